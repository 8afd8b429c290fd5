//! Which SIMD kernels run: chosen once at run time from what the CPU has (so one binary runs,
//! without SIGILL, on any x86-64 or aarch64 machine), or forced with `ORRERY_SIMD` so tests and
//! benchmarks can compare the paths on one machine.

use std::sync::OnceLock;

/// A family of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdPath {
    /// Portable Rust; the reference the others are tested against.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64-v3).
    Avx2,
    /// AVX-512F on top of the AVX2 set.
    Avx512,
}

impl SimdPath {
    /// Every path, best last.
    pub const ALL: [SimdPath; 3] = [SimdPath::Scalar, SimdPath::Avx2, SimdPath::Avx512];

    pub const fn name(self) -> &'static str {
        match self {
            SimdPath::Scalar => "scalar",
            SimdPath::Avx2 => "avx2",
            SimdPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            SimdPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx512 => SimdPath::Avx2.supported() && is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this CPU can run.
    pub fn available() -> Vec<SimdPath> {
        SimdPath::ALL
            .into_iter()
            .filter(|p| p.supported())
            .collect()
    }

    /// Tokens that share one pass over a row: as many as the vector registers hold
    /// accumulators for (two per token).
    pub const fn group(self) -> usize {
        match self {
            SimdPath::Avx512 => 8,
            SimdPath::Avx2 | SimdPath::Scalar => 4,
        }
    }
}

/// The most tokens any path groups.
pub const MAX_GROUP: usize = 8;

/// The path to use given the `ORRERY_SIMD` value, and a warning when the request cannot be
/// honoured. Pure (the caller reads the environment) so it can be tested with any value.
pub fn choose(request: Option<&str>) -> (SimdPath, Option<String>) {
    let best = SimdPath::available()
        .last()
        .copied()
        .unwrap_or(SimdPath::Scalar);
    let Some(request) = request.map(str::trim).filter(|r| !r.is_empty()) else {
        return (best, None);
    };
    match SimdPath::ALL.into_iter().find(|p| p.name() == request) {
        Some(p) if p.supported() => (p, None),
        Some(p) => (
            best,
            Some(format!(
                "ORRERY_SIMD={request}: this CPU lacks {}; using {}",
                p.name(),
                best.name()
            )),
        ),
        None => (
            best,
            Some(format!(
                "ORRERY_SIMD={request}: not one of scalar, avx2, avx512; using {}",
                best.name()
            )),
        ),
    }
}

static ACTIVE: OnceLock<SimdPath> = OnceLock::new();

/// The path every [`Matrix::mul_rows`](super::Matrix::mul_rows) uses, chosen on first use.
pub fn active() -> SimdPath {
    *ACTIVE.get_or_init(|| {
        let (path, warning) = choose(std::env::var("ORRERY_SIMD").ok().as_deref());
        if let Some(w) = warning {
            // Once per process, before any logger is guaranteed to exist: stderr.
            eprintln!("orrery-cpu: {w}");
        }
        path
    })
}

/// The active path's name ("avx512", "avx2", "scalar"), for benchmarks and logs.
pub fn simd_path() -> &'static str {
    active().name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_honoured_only_when_the_cpu_can() {
        let best = *SimdPath::available().last().unwrap();
        assert_eq!(choose(None), (best, None));
        assert_eq!(choose(Some("scalar")), (SimdPath::Scalar, None));
        let (p, w) = choose(Some("neon-ish"));
        assert_eq!(p, best);
        assert!(w.unwrap().contains("not one of"));
        for path in SimdPath::ALL {
            let (p, w) = choose(Some(path.name()));
            if path.supported() {
                assert_eq!((p, w), (path, None));
            } else {
                assert_eq!(p, best);
                assert!(w.unwrap().contains("lacks"));
            }
        }
    }
}
