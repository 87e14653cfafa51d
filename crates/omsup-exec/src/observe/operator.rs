//! The operator's own machine: the image package and the backup directory (the dump and
//! restore clients are tried by `clients.rs`, once the meta database answered).

use std::path::Path;

use omsup_engine::observed::{ObservedBackupDir, ObservedOperatorSide, ObservedPackage};
use omsup_model::PlanFile;

pub(crate) async fn observe_operator_side(plan: &PlanFile) -> ObservedOperatorSide {
    let package = plan.image.package.clone();
    let backup_dir = plan.backup.dir.clone();
    let observed = tokio::task::spawn_blocking(move || ObservedOperatorSide {
        package: observe_package(&package),
        backup_dir: observe_backup_dir(&backup_dir),
        clients: Default::default(),
    })
    .await;
    observed.unwrap_or(ObservedOperatorSide {
        package: ObservedPackage {
            exists: false,
            readable: false,
            size_bytes: 0,
        },
        backup_dir: ObservedBackupDir {
            exists: false,
            writable: false,
            free_bytes: 0,
        },
        clients: Default::default(),
    })
}

pub(crate) fn observe_package(path: &Path) -> ObservedPackage {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => ObservedPackage {
            exists: true,
            readable: std::fs::File::open(path).is_ok(),
            size_bytes: metadata.len(),
        },
        _ => ObservedPackage {
            exists: false,
            readable: false,
            size_bytes: 0,
        },
    }
}

fn observe_backup_dir(path: &Path) -> ObservedBackupDir {
    let exists = path.is_dir();
    if !exists {
        return ObservedBackupDir {
            exists,
            writable: false,
            free_bytes: 0,
        };
    }
    let writable = rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok();
    let free_bytes = rustix::fs::statvfs(path)
        .map(|stats| stats.f_bavail.saturating_mul(stats.f_frsize))
        .unwrap_or(0);
    ObservedBackupDir {
        exists,
        writable,
        free_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_is_writable_with_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let observed = observe_backup_dir(dir.path());
        assert!(observed.exists && observed.writable);
        assert!(observed.free_bytes > 0);
        let missing = observe_backup_dir(&dir.path().join("missing"));
        assert!(!missing.exists);
        let package = observe_package(&dir.path().join("missing.tar"));
        assert!(!package.exists);
    }
}
