//! `cargo xtask sim-images`: the OMS simulator packed into one Docker image per version, with
//! no registry: a root filesystem (busybox-static, the simulator and the shared libraries it
//! needs) is `docker import`ed once per version, tagged like the real images
//! (`oms:feature_4.2.9-ce`), and written with `docker save` as the "installation package"
//! that omsup streams into each node's daemon (`<target>/oms-sim-images/oms-<x.y.z>-ce.tar`).
//!
//! Rebuilds only when the simulator binary or this recipe changed (a stamp next to the tarballs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::ci::run_cmd;

/// Versions the test world can deploy and upgrade between.
pub const VERSIONS: &[&str] = &["4.1.0", "4.2.0", "4.2.8", "4.2.9"];

/// Bump when the image layout changes, so stamps from older recipes rebuild.
const RECIPE_VERSION: &str = "sim-images v3";

pub fn run(args: &[String]) -> Result<()> {
    let force = match args {
        [] => false,
        [flag] if flag == "--force" => true,
        _ => bail!("usage: cargo xtask sim-images [--force]"),
    };
    let started = Instant::now();
    crate::services::ensure_debian_packages(&[("busybox", "busybox-static")])?;
    run_cmd(Command::new("cargo").args(["build", "--package", "oms-sim"]))?;
    let binary = target_dir().join("debug/oms-sim");
    let out_dir = images_dir();
    std::fs::create_dir_all(&out_dir)?;

    let stamp = stamp_of(&binary)?;
    let stamp_path = out_dir.join("stamp");
    let fresh = !force
        && std::fs::read_to_string(&stamp_path).is_ok_and(|old| old == stamp)
        && VERSIONS
            .iter()
            .all(|v| package_path(v).is_file() && image_exists(&tag(v)));
    if fresh {
        eprintln!(
            "sim-images: up to date ({} images in {})",
            VERSIONS.len(),
            out_dir.display()
        );
        return Ok(());
    }

    let rootfs_dir = tempfile::tempdir()?;
    let rootfs = rootfs_dir.path().join("rootfs");
    build_rootfs(&rootfs, &binary)?;
    let rootfs_tar = rootfs_dir.path().join("rootfs.tar");
    run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("--numeric-owner")
            .arg("-cf")
            .arg(&rootfs_tar)
            .arg("."),
    )?;

    for version in VERSIONS {
        let tag = tag(version);
        let superseded = image_id(&tag);
        run_cmd(
            Command::new("docker")
                .arg("import")
                .args(["--change", &format!("ENV OMS_SIM_VERSION={version}-CE")])
                .args([
                    "--change",
                    "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                ])
                .args(["--change", "WORKDIR /root"])
                .args(["--change", r#"CMD ["/usr/local/bin/oms-sim","serve"]"#])
                .arg(&rootfs_tar)
                .arg(&tag),
        )?;
        // The old image lost its tag: remove it so rebuilds do not pile up dangling images (it
        // stays when a container still uses it; that is fine).
        if let Some(old) = superseded.filter(|old| image_id(&tag).as_ref() != Some(old)) {
            let _ = Command::new("docker").args(["image", "rm", &old]).output();
        }
        let package = package_path(version);
        run_cmd(
            Command::new("docker")
                .arg("save")
                .arg("-o")
                .arg(&package)
                .arg(&tag),
        )?;
    }
    std::fs::write(&stamp_path, stamp)?;
    let size = std::fs::metadata(package_path(VERSIONS[0]))?.len();
    eprintln!(
        "sim-images: built {} images ({:.1} MiB each) in {:.1?}",
        VERSIONS.len(),
        size as f64 / 1_048_576.0,
        started.elapsed()
    );
    Ok(())
}

// Names and paths are the test world's: one definition for the builder and its users.
use omsup_testworld::world::{image_package as package_path, image_tag as tag, target_dir};

fn images_dir() -> PathBuf {
    target_dir().join("oms-sim-images")
}

fn image_id(tag: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn stamp_of(binary: &Path) -> Result<String> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let mut hasher = Sha256::new();
    hasher.update(RECIPE_VERSION.as_bytes());
    hasher.update(&bytes);
    Ok(hex::encode(hasher.finalize()))
}

fn build_rootfs(rootfs: &Path, binary: &Path) -> Result<()> {
    for dir in [
        "bin",
        "usr/local/bin",
        "root",
        "tmp",
        "etc",
        "home/admin/conf",
        "home/admin/logs",
        "home/ds/store",
        "home/ds/run",
        "etc/pki/nginx",
    ] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    let busybox = Path::new("/bin/busybox");
    let linkage = Command::new("ldd")
        .arg(busybox)
        .output()
        .context("cannot run ldd")?;
    if linkage.status.success()
        && !String::from_utf8_lossy(&linkage.stdout).contains("statically linked")
    {
        bail!(
            "/bin/busybox is dynamically linked\nhint: install the static build: `apt-get install busybox-static`"
        );
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox"))
        .context("cannot copy /bin/busybox (busybox-static)")?;
    let applets = Command::new(busybox)
        .arg("--list")
        .output()
        .context("cannot list busybox applets")?;
    for applet in String::from_utf8_lossy(&applets.stdout)
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    // Operators run `bash /root/docker_init.sh`; busybox has no `bash` applet, so `bash` is a
    // script that hands over to busybox's shell.
    write_executable(&rootfs.join("bin/bash"), "#!/bin/sh\nexec /bin/sh \"$@\"\n")?;
    write_executable(
        &rootfs.join("root/docker_init.sh"),
        "#!/bin/sh\nexec /usr/local/bin/oms-sim init \"$@\"\n",
    )?;
    // The runbooks wait for `supervisorctl status` to show every component RUNNING.
    write_executable(
        &rootfs.join("usr/local/bin/supervisorctl"),
        "#!/bin/sh\nexec /usr/local/bin/oms-sim supervisorctl \"$@\"\n",
    )?;
    std::fs::copy(binary, rootfs.join("usr/local/bin/oms-sim"))?;
    for library in shared_libraries(binary)? {
        let inside = rootfs.join(library.strip_prefix("/").unwrap_or(&library));
        std::fs::create_dir_all(inside.parent().expect("a library path has a parent"))?;
        std::fs::copy(&library, &inside)
            .with_context(|| format!("cannot copy {}", library.display()))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nadmin:x:500:500::/home/admin:/bin/sh\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nadmin:x:500:\n")?;
    std::fs::write(rootfs.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Every shared library `ldd` says the binary loads, the dynamic loader included.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    if !output.status.success() {
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect())
}
