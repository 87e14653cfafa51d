//! The dump and restore clients, tried before anything is stopped: each must exist and talk to
//! this meta database (the dump client dumps the rm schema without rows, the restore client
//! runs `SELECT 1`), with the options the backup will use (`--column-statistics=0` for a MySQL
//! 8 `mysqldump` against a server without `COLUMN_STATISTICS`).

use std::path::Path;

use omsup_engine::observed::{ClientCheck, ObservedClients};
use omsup_model::PlanFile;

use crate::backup::{self, ClientConnection};
use crate::secrets::Secrets;

/// Tries both clients; `column_statistics` is whether the server has
/// `information_schema.COLUMN_STATISTICS`.
pub(crate) async fn observe_clients(
    plan: &PlanFile,
    secrets: &Secrets,
    column_statistics: bool,
) -> ObservedClients {
    let connection = ClientConnection {
        host: &plan.meta_db.host,
        port: plan.meta_db.port,
        user: &plan.meta_db.user,
        password: secrets.meta_password.expose(),
    };
    let scrub = |text: String| {
        let password = secrets.meta_password.expose();
        if password.is_empty() {
            text
        } else {
            text.replace(password, "***")
        }
    };
    let dump = match backup::find_dump_client(plan.backup.dump_command.as_deref()) {
        Err(error) => ClientCheck::Missing {
            error: error.to_string(),
        },
        Ok(client) => {
            let adaptations = backup::dump_adaptations(&client, column_statistics).await;
            let probe =
                backup::probe_dump_client(&client, &connection, &plan.meta_db.rm, &adaptations)
                    .await;
            checked(&client, probe, adaptations, scrub).await
        }
    };
    let restore = match backup::find_restore_client() {
        Err(error) => ClientCheck::Missing {
            error: error.to_string(),
        },
        Ok(client) => {
            let probe = backup::probe_restore_client(&client, &connection).await;
            checked(&client, probe, Vec::new(), scrub).await
        }
    };
    ObservedClients { dump, restore }
}

async fn checked(
    client: &Path,
    probe: Result<(), backup::BackupError>,
    adaptations: Vec<String>,
    scrub: impl Fn(String) -> String,
) -> ClientCheck {
    let name = client.display().to_string();
    match probe {
        Ok(()) => ClientCheck::Works {
            client: name,
            version: backup::client_version(client).await,
            adaptations,
        },
        Err(error) => ClientCheck::Fails {
            client: name,
            error: scrub(super::error_chain(&error)),
        },
    }
}
