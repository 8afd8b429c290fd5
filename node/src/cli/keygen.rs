//! `orrery keygen`: a new API key and its keys-file entry.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeygenArgs {
    #[arg(long)]
    pub user: String,
    /// free | premium | enterprise
    #[arg(long, default_value = "free")]
    pub tier: String,
}

pub fn run(KeygenArgs { user, tier }: KeygenArgs) -> anyhow::Result<ExitCode> {
    let user = orrery::users::UserId::parse(&user).ok_or_else(|| {
        anyhow::anyhow!("user names are 1-64 letters, digits, '-', '_', '.' or '@'")
    })?;
    let tier: orrery::users::Tier = tier.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let (key, entry) = orrery::users::keys::generate(&user, tier);
    eprintln!("the key (shown once; give it to {user}):");
    println!("{key}");
    eprintln!("\nadd to the keys file ([auth] keys_file in cluster.toml):\n\n{entry}");
    Ok(ExitCode::SUCCESS)
}
