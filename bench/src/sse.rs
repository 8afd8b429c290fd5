//! Server-sent events as OpenAI-compatible servers stream them (shared by the suite and the soak).

/// Takes every complete line out of `buf` and returns the `data:` payloads among them, in order
/// (`[DONE]` as it is); a partial last line stays in `buf` for the next bytes.
pub fn take_data(buf: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        let line = String::from_utf8_lossy(&line);
        if let Some(data) = line.trim().strip_prefix("data:") {
            out.push(data.trim().to_string());
        }
    }
    out
}
