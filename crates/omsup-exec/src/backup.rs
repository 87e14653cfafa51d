//! Backups of the meta databases with the stock dump client: streamed, checksummed, verified,
//! and restorable by hand with the documented `mysql ... -e "source FILE" -D DB` command.
//!
//! The password reaches the client through an option file it reads from an inherited pipe
//! (`--defaults-extra-file=/dev/fd/N`), never through argv, the environment or a file on disk. The dump streams from the client's stdout into a
//! 0600 file while its sha256 is computed; the backup is accepted only when the client exits
//! 0, the file is not empty and it ends with the `-- Dump completed` trailer. Row counts per
//! table are read from the database while the dump streams (the upgrade dumps a quiescent
//! database: every OMS container that writes to it is stopped by then) and checked again
//! after a restore.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the dump and restore clients reach the meta database.
pub struct ClientConnection<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

pub use omsup_engine::outputs::BackupManifest;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot find a dump client: neither `mariadb-dump` nor `mysqldump` is on PATH")]
    NoDumpClient,
    #[error("cannot find a restore client: neither `mariadb` nor `mysql` is on PATH")]
    NoRestoreClient,
    #[error("the dump client `{}` (`[backup] dump_command`) does not exist", .0.display())]
    ConfiguredClientMissing(PathBuf),
    #[error("`{client}` exited with {status}{}", stderr_suffix(stderr))]
    ClientCheck {
        client: String,
        status: String,
        stderr: String,
    },
    #[error("`{0}` is not a valid database name for a backup")]
    InvalidDatabaseName(String),
    #[error("cannot read table row counts of `{database}`")]
    RowCounts {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} `{}`", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the dump of `{database}` failed: `{client}` exited with {status}{}",
        stderr_suffix(stderr)
    )]
    DumpFailed {
        database: String,
        client: String,
        status: String,
        stderr: String,
    },
    #[error("the dump of `{database}` is incomplete: {reason}")]
    DumpIncomplete { database: String, reason: String },
    #[error("backup file `{}` is missing", path.display())]
    BackupMissing { path: PathBuf },
    #[error("backup file `{}` is corrupted: sha256 {actual} does not match the recorded {expected}", path.display())]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot re-create database `{database}` before the restore")]
    Recreate {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the restore of `{database}` failed: `{client}` exited with {status}{}",
        stderr_suffix(stderr)
    )]
    RestoreFailed {
        database: String,
        client: String,
        status: String,
        stderr: String,
    },
    #[error("the restored `{database}` differs from its backup: {differences}")]
    RestoreMismatch {
        database: String,
        differences: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let tail = stderr.trim();
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// The dump client: the configured one (a path, or a name looked up on PATH), else
/// `mariadb-dump`, else `mysqldump` from PATH.
pub fn find_dump_client(configured: Option<&Path>) -> Result<PathBuf, BackupError> {
    match configured {
        Some(path) if path.components().count() == 1 && !path.is_absolute() => {
            find_on_path(&[&path.display().to_string()])
                .ok_or_else(|| BackupError::ConfiguredClientMissing(path.to_owned()))
        }
        Some(path) if path.is_file() => Ok(path.to_owned()),
        Some(path) => Err(BackupError::ConfiguredClientMissing(path.to_owned())),
        None => find_on_path(&["mariadb-dump", "mysqldump"]).ok_or(BackupError::NoDumpClient),
    }
}

/// A MySQL 8 (or later) `mysqldump` asks `information_schema.COLUMN_STATISTICS` for
/// histograms, which MariaDB and OceanBase lack: against such a server it needs
/// `--column-statistics=0`. MariaDB's clients know no such option.
pub const COLUMN_STATISTICS_OFF: &str = "--column-statistics=0";

/// The first line of `client --version` (`mysqldump  Ver 8.0.36 for Linux on x86_64`,
/// `mariadb-dump from 11.4.2-MariaDB, ...`), or `None` when it does not run.
pub async fn client_version(client: &Path) -> Option<String> {
    let output = tokio::process::Command::new(client)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    output
        .status
        .success()
        .then(|| text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Whether a client of this `--version` line asks for column statistics by default (MySQL's
/// 8 and later; never MariaDB's).
pub fn asks_column_statistics(version: &str) -> bool {
    if version.contains("MariaDB") {
        return false;
    }
    let major = version
        .split_whitespace()
        .skip_while(|word| *word != "Ver")
        .nth(1)
        .and_then(|number| number.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    major.is_some_and(|major| (8..10).contains(&major))
}

/// Whether the server has `information_schema.COLUMN_STATISTICS` (MySQL 8 does; MariaDB and
/// OceanBase do not).
pub async fn server_has_column_statistics(pool: &MySqlPool) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'COLUMN_STATISTICS'",
    )
    .fetch_one(pool)
    .await?;
    Ok(found > 0)
}

/// The options the dump client needs against this server beyond the usual ones.
pub async fn dump_adaptations(client: &Path, server_has_column_statistics: bool) -> Vec<String> {
    if server_has_column_statistics {
        return Vec::new();
    }
    match client_version(client).await {
        Some(version) if asks_column_statistics(&version) => {
            vec![COLUMN_STATISTICS_OFF.to_owned()]
        }
        _ => Vec::new(),
    }
}

/// Dumps `database`'s schema (no rows) with the client and the options a backup will use,
/// and discards it: proves the client runs, logs in and can dump from this server.
pub async fn probe_dump_client(
    client: &Path,
    connection: &ClientConnection<'_>,
    database: &str,
    adaptations: &[String],
) -> Result<(), BackupError> {
    check_identifier(database)?;
    let options = OptionFile::write(connection)?;
    let output = tokio::process::Command::new(client)
        .arg(options.arg())
        .args(adaptations)
        .args(["--no-data", "--single-transaction", "--skip-triggers"])
        .arg(database)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(io_error("cannot start the dump client", client))?;
    drop(options);
    client_status(client, &output)
}

/// Runs `SELECT 1` through the restore client: proves it runs and logs in.
pub async fn probe_restore_client(
    client: &Path,
    connection: &ClientConnection<'_>,
) -> Result<(), BackupError> {
    let options = OptionFile::write(connection)?;
    let output = tokio::process::Command::new(client)
        .arg(options.arg())
        .args(["--batch", "--execute=SELECT 1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(io_error("cannot start the restore client", client))?;
    drop(options);
    client_status(client, &output)
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

fn client_status(client: &Path, output: &std::process::Output) -> Result<(), BackupError> {
    if output.status.success() {
        Ok(())
    } else {
        Err(BackupError::ClientCheck {
            client: client.display().to_string(),
            status: output.status.to_string(),
            stderr: last_lines(&String::from_utf8_lossy(&output.stderr), 3),
        })
    }
}

/// The restore client: `mariadb`, else `mysql`, from PATH.
pub fn find_restore_client() -> Result<PathBuf, BackupError> {
    find_on_path(&["mariadb", "mysql"]).ok_or(BackupError::NoRestoreClient)
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Identifiers we interpolate into SQL are restricted to what OMS database names use.
fn check_identifier(name: &str) -> Result<(), BackupError> {
    let valid = omsup_model::validate::is_database_name(name);
    if valid {
        Ok(())
    } else {
        Err(BackupError::InvalidDatabaseName(name.to_owned()))
    }
}

/// Rows per base table of `database`.
pub async fn row_counts(
    pool: &MySqlPool,
    database: &str,
) -> Result<BTreeMap<String, u64>, BackupError> {
    check_identifier(database)?;
    let wrap = |source| BackupError::RowCounts {
        database: database.to_owned(),
        source,
    };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .bind(database)
    .fetch_all(pool)
    .await
    .map_err(wrap)?;
    let mut counts = BTreeMap::new();
    for table in tables {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM `{database}`.`{}`",
            table.replace('`', "``")
        )))
        .fetch_one(pool)
        .await
        .map_err(wrap)?;
        counts.insert(table, count.max(0) as u64);
    }
    Ok(counts)
}

/// The connection for the client as a MySQL option file the client reads from a pipe it
/// inherits (`--defaults-extra-file=/dev/fd/N`). The password is never on argv, in the
/// environment or on disk: nothing is left behind even when omsup is killed mid-backup.
struct OptionFile {
    read: std::io::PipeReader,
}

impl OptionFile {
    fn write(connection: &ClientConnection<'_>) -> Result<Self, BackupError> {
        let io = |source| BackupError::Io {
            what: "cannot hand the client its option file through",
            path: std::path::PathBuf::from("a pipe"),
            source,
        };
        let quote = |value: &str| value.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!(
            "[client]\nhost=\"{}\"\nport={}\nuser=\"{}\"\npassword=\"{}\"\n",
            quote(connection.host),
            connection.port,
            quote(connection.user),
            quote(connection.password)
        );
        let (read, mut write) = std::io::pipe().map_err(io)?;
        // A few hundred bytes: far below the pipe's buffer, so this never blocks. Dropping the
        // writer (close-on-exec, never inherited) gives the reader its end of file.
        write.write_all(text.as_bytes()).map_err(io)?;
        drop(write);
        // The child inherits the read end under the same number.
        rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::empty())
            .map_err(|errno| io(errno.into()))?;
        Ok(Self { read })
    }

    fn arg(&self) -> String {
        use std::os::fd::AsRawFd as _;
        format!("--defaults-extra-file=/dev/fd/{}", self.read.as_raw_fd())
    }
}

/// Dumps `database` into `<dir>/<database>.sql` and returns its manifest (also written as
/// `<dir>/<database>.manifest.json`). `on_progress` gets the bytes written so far.
pub async fn backup_database(
    dump_client: &Path,
    connection: &ClientConnection<'_>,
    pool: &MySqlPool,
    database: &str,
    dir: &Path,
    on_progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<BackupManifest, BackupError> {
    check_identifier(database)?;
    create_private_dir(dir)?;
    let create_database = show_create_database(pool, database).await?;
    // Counted while the dump streams (the database is quiescent: the containers that write to
    // it are stopped), so the count adds nothing to the downtime window.
    let counting = row_counts(pool, database);

    let final_path = dir.join(format!("{database}.sql"));
    let partial_path = dir.join(format!("{database}.sql.partial"));
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { what, path, source }
    };
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial_path)
        .await
        .map_err(io("cannot create backup file", &partial_path))?;

    let has_statistics = server_has_column_statistics(pool).await.unwrap_or(true);
    let adaptations = dump_adaptations(dump_client, has_statistics).await;
    let options = OptionFile::write(connection)?;
    let mut child = tokio::process::Command::new(dump_client)
        .arg(options.arg())
        .args(&adaptations)
        .args([
            "--single-transaction",
            "--skip-triggers",
            "--hex-blob",
            "--default-character-set=utf8mb4",
        ])
        .arg(database)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io("cannot start the dump client", dump_client))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_reader = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let streaming = async {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        // The trailer is checked on the last bytes of the stream.
        let mut tail: Vec<u8> = Vec::with_capacity(512);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = stdout.read(&mut buffer).await.map_err(io(
                "cannot read the dump client's output for",
                &partial_path,
            ))?;
            if read == 0 {
                break;
            }
            let chunk = &buffer[..read];
            hasher.update(chunk);
            out.write_all(chunk)
                .await
                .map_err(io("cannot write backup file", &partial_path))?;
            size += read as u64;
            tail.extend_from_slice(chunk);
            if tail.len() > 512 {
                tail.drain(..tail.len() - 512);
            }
            on_progress(size);
        }
        out.sync_all()
            .await
            .map_err(io("cannot sync backup file", &partial_path))?;
        Ok::<_, BackupError>((hasher, size, tail))
    };
    let (row_counts, streamed) = tokio::join!(counting, streaming);
    let ((hasher, size, tail), row_counts) =
        match streamed.and_then(|streamed| Ok((streamed, row_counts?))) {
            Ok(done) => done,
            Err(error) => {
                let _ = std::fs::remove_file(&partial_path);
                return Err(error);
            }
        };
    drop(out);
    let status = child
        .wait()
        .await
        .map_err(io("cannot wait for the dump client", dump_client))?;
    let stderr_text = stderr_reader.await.unwrap_or_default();
    drop(options);

    let client = dump_client.display().to_string();
    if !status.success() {
        let _ = std::fs::remove_file(&partial_path);
        return Err(BackupError::DumpFailed {
            database: database.to_owned(),
            client,
            status: status.to_string(),
            stderr: last_lines(&stderr_text, 5),
        });
    }
    let incomplete = |reason: &str| BackupError::DumpIncomplete {
        database: database.to_owned(),
        reason: reason.to_owned(),
    };
    if size == 0 {
        return Err(incomplete("the file is empty"));
    }
    let tail_text = String::from_utf8_lossy(&tail);
    let last_line = tail_text.trim_end().lines().last().unwrap_or_default();
    if !last_line.starts_with("-- Dump completed") {
        return Err(incomplete(
            "it does not end with the `-- Dump completed` trailer",
        ));
    }
    std::fs::rename(&partial_path, &final_path)
        .map_err(io("cannot rename backup file to", &final_path))?;
    sync_dir(dir)?;

    let manifest = BackupManifest {
        database: database.to_owned(),
        file: final_path,
        size_bytes: size,
        sha256: hex::encode(hasher.finalize()),
        row_counts,
        create_database,
        dump_client: dump_client.to_owned(),
    };
    write_manifest(dir, &manifest)?;
    Ok(manifest)
}

/// sha256 and size of a backup file, streamed; an error names a missing file.
pub async fn checksum_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::BackupMissing {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(BackupError::Io {
                what: "cannot open backup file",
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file
            .read(&mut buffer)
            .await
            .map_err(|source| BackupError::Io {
                what: "cannot read backup file",
                path: path.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Checks a backup file against its manifest without touching the database.
pub async fn verify_backup(manifest: &BackupManifest) -> Result<(), BackupError> {
    let (actual, _) = checksum_file(&manifest.file).await?;
    if actual != manifest.sha256 {
        return Err(BackupError::ChecksumMismatch {
            path: manifest.file.clone(),
            expected: manifest.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// Drops and re-creates the database, restores the dump with the stock client (streamed on
/// its stdin, like `source FILE`), and checks the row counts against the manifest. Call
/// [`verify_backup`] on every backup first: nothing is dropped here before the checksum of
/// this one is verified again.
pub async fn restore_database(
    restore_client: &Path,
    connection: &ClientConnection<'_>,
    pool: &MySqlPool,
    manifest: &BackupManifest,
) -> Result<(), BackupError> {
    let database = manifest.database.as_str();
    check_identifier(database)?;
    verify_backup(manifest).await?;
    let recreate = |source| BackupError::Recreate {
        database: database.to_owned(),
        source,
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{database}`"
    )))
    .execute(pool)
    .await
    .map_err(recreate)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(manifest.create_database.clone()))
        .execute(pool)
        .await
        .map_err(recreate)?;

    let options = OptionFile::write(connection)?;
    let dump = std::fs::File::open(&manifest.file).map_err(|source| BackupError::Io {
        what: "cannot open backup file",
        path: manifest.file.clone(),
        source,
    })?;
    let output = tokio::process::Command::new(restore_client)
        .arg(options.arg())
        .arg(format!("--database={database}"))
        .stdin(Stdio::from(dump))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| BackupError::Io {
            what: "cannot start the restore client",
            path: restore_client.to_owned(),
            source,
        })?;
    drop(options);
    if !output.status.success() {
        return Err(BackupError::RestoreFailed {
            database: database.to_owned(),
            client: restore_client.display().to_string(),
            status: output.status.to_string(),
            stderr: last_lines(&String::from_utf8_lossy(&output.stderr), 5),
        });
    }
    let restored = row_counts(pool, database).await?;
    let differences = diff_counts(&manifest.row_counts, &restored);
    if !differences.is_empty() {
        return Err(BackupError::RestoreMismatch {
            database: database.to_owned(),
            differences,
        });
    }
    Ok(())
}

fn diff_counts(expected: &BTreeMap<String, u64>, actual: &BTreeMap<String, u64>) -> String {
    let mut differences = Vec::new();
    for (table, rows) in expected {
        match actual.get(table) {
            None => differences.push(format!("table `{table}` is missing")),
            Some(found) if found != rows => {
                differences.push(format!("`{table}` has {found} rows, the backup {rows}"))
            }
            Some(_) => {}
        }
    }
    for table in actual.keys().filter(|t| !expected.contains_key(*t)) {
        differences.push(format!("table `{table}` is not in the backup"));
    }
    differences.join("; ")
}

async fn show_create_database(pool: &MySqlPool, database: &str) -> Result<String, BackupError> {
    let row: (String, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SHOW CREATE DATABASE `{database}`"
    )))
    .fetch_one(pool)
    .await
    .map_err(|source| BackupError::RowCounts {
        database: database.to_owned(),
        source,
    })?;
    Ok(row.1)
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| BackupError::Io {
            what: "cannot create backup directory",
            path: dir.to_owned(),
            source,
        })
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| BackupError::Io {
            what: "cannot sync backup directory",
            path: dir.to_owned(),
            source,
        })
}

fn write_manifest(dir: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let path = dir.join(format!("{}.manifest.json", manifest.database));
    let text = serde_json::to_string_pretty(manifest).expect("a manifest always serializes");
    std::fs::write(&path, text + "\n").map_err(|source| BackupError::Io {
        what: "cannot write backup manifest",
        path,
        source,
    })
}

/// The last `count` lines of `text` (for error messages quoting a tool's output).
pub(crate) fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_outside_the_oms_alphabet_are_refused() {
        for name in ["rm_428", "cm_hb_428", "w1a2b3_cm_hb_hz"] {
            assert!(check_identifier(name).is_ok(), "{name}");
        }
        for name in ["", "rm`; DROP DATABASE x; --", "a b", "rm-428"] {
            assert!(check_identifier(name).is_err(), "{name}");
        }
    }

    #[test]
    fn only_mysql_8_dump_clients_ask_for_column_statistics() {
        for (version, asks) in [
            (
                "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)",
                true,
            ),
            (
                "mysqldump  Ver 9.1.0 for Linux on x86_64 (MySQL Community Server - GPL)",
                true,
            ),
            (
                "mysqldump  Ver 10.19 Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)",
                false,
            ),
            (
                "mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)",
                false,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)",
                false,
            ),
            ("obdump", false),
        ] {
            assert_eq!(asks_column_statistics(version), asks, "{version}");
        }
    }

    #[test]
    fn a_configured_dump_client_that_does_not_exist_is_named() {
        let error = find_dump_client(Some(Path::new("/nowhere/mysqldump"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the dump client `/nowhere/mysqldump` (`[backup] dump_command`) does not exist"
        );
        assert!(find_dump_client(Some(Path::new("omsup-no-such-dump-client"))).is_err());
        assert_eq!(
            find_dump_client(Some(Path::new("sh"))).unwrap().file_name(),
            Some(std::ffi::OsStr::new("sh"))
        );
    }

    #[test]
    fn count_differences_name_each_table() {
        let expected = BTreeMap::from([("a".to_owned(), 3), ("b".to_owned(), 1)]);
        let actual = BTreeMap::from([("a".to_owned(), 2), ("c".to_owned(), 0)]);
        assert_eq!(
            diff_counts(&expected, &actual),
            "`a` has 2 rows, the backup 3; table `b` is missing; table `c` is not in the backup"
        );
        assert_eq!(diff_counts(&expected, &expected), "");
    }

    #[test]
    fn the_option_file_comes_through_a_pipe_and_keeps_the_password_out_of_argv() {
        let connection = ClientConnection {
            host: "127.0.0.1",
            port: 3306,
            user: "u",
            password: "p\"q\\r",
        };
        let file = OptionFile::write(&connection).unwrap();
        let arg = file.arg();
        assert!(!arg.contains("p\"q"), "{arg}");
        let path = arg.strip_prefix("--defaults-extra-file=").unwrap();
        assert!(path.starts_with("/dev/fd/"), "{path}");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(r#"password="p\"q\\r""#), "{text}");
    }
}
