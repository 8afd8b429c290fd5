//! `orrery keygen`: a new API key and its keys-file entry, or (`--payload`) a new payload
//! encryption key for `ORRERY_PAYLOAD_KEYS`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeygenArgs {
    #[arg(long, required_unless_present = "payload")]
    pub user: Option<String>,
    /// free | premium | enterprise
    #[arg(long, default_value = "free")]
    pub tier: String,
    /// Print a new payload encryption key (`ID:BASE64_32_BYTES`) instead of an API key.
    #[arg(long, conflicts_with = "user")]
    pub payload: bool,
    /// The payload key's id (default: today's date, `kYYYYMMDD`).
    #[arg(long, requires = "payload")]
    pub id: Option<String>,
}

pub fn run(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    if a.payload {
        let id = a.id.unwrap_or_else(|| {
            let today = prost_types::Timestamp::from(std::time::SystemTime::now()).to_string();
            format!("k{}", today.get(..10).unwrap_or("1").replace('-', ""))
        });
        // Parsed back, so that a bad id is refused here rather than by the node.
        let ring =
            orrery::codec::Keyring::parse(&orrery::codec::Keyring::generate(&id).active().entry())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!(
            "a new payload key (put it first in ORRERY_PAYLOAD_KEYS, keep the old ones after it):"
        );
        println!("{}", ring.active().entry());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(user) = a.user else {
        anyhow::bail!("--user is required for an API key");
    };
    let user = orrery::users::UserId::parse(&user).ok_or_else(|| {
        anyhow::anyhow!("user names are 1-64 letters, digits, '-', '_', '.' or '@'")
    })?;
    let tier: orrery::users::Tier = a.tier.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let (key, entry) = orrery::users::keys::generate(&user, tier);
    eprintln!("the key (shown once; give it to {user}):");
    println!("{key}");
    eprintln!("\nadd to the keys file ([auth] keys_file in cluster.toml):\n\n{entry}");
    Ok(ExitCode::SUCCESS)
}
