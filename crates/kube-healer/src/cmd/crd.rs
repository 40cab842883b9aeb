//! `kube-healer crd`: the CRD manifests generated from kube-healer-api.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Write one file per CRD into this directory (as committed in crds/ and in the chart's
    /// files/crds/) instead of printing a multi-document stream; repeat for several.
    #[arg(long)]
    dir: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let crds = kube_healer_api::crds();
    if args.dir.is_empty() {
        let mut out = std::io::stdout().lock();
        for (_, crd) in &crds {
            writeln!(out, "---\n{}", kube_healer_api::crd_manifest(crd).trim_end())?;
        }
    }
    for dir in &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (file, crd) in &crds {
            let path = dir.join(file);
            std::fs::write(&path, kube_healer_api::crd_manifest(crd))
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
