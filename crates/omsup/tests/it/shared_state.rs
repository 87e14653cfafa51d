//! Issue 13, the journal in the meta database server (`[state] backend = "meta_db"`): a run
//! started on one machine is seen, resumed and rolled back from another (two state
//! directories stand for two machines); `omsup state migrate` moves a history there and back.

use serde_json::Value;

use omsup_testworld::{World, WorldSpec};

use crate::apply::{assert_upgraded, before, plan_steps, show};
use crate::rollback::{assert_back_to_original, original};
use crate::support::{omsup, omsup_env, up};

/// A copy of the world's plan file whose journal lives in the meta database server.
pub(crate) fn meta_db_plan(world: &World) -> String {
    let text = std::fs::read_to_string(&world.plan_path).unwrap();
    assert!(!text.contains("[state]"), "the world's plan has no [state]");
    let path = world.dir.join("plan-meta-db.toml");
    std::fs::write(&path, format!("{text}\n[state]\nbackend = \"meta_db\"\n")).unwrap();
    path.display().to_string()
}

fn json_of(args: &[&str]) -> Value {
    let run = omsup(args);
    assert_eq!(run.code, 0, "{}", show(&run));
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&run)))
}

#[tokio::test]
async fn a_run_started_on_one_machine_is_seen_resumed_and_rolled_back_from_another() {
    let world = up(WorldSpec::two_nodes()).await;
    let original = original(&world).await;
    let before = before(&world).await;
    let plan = meta_db_plan(&world);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let [a, b] = [0, 1].map(|i| dirs[i].path().join("state").display().to_string());
    let steps = plan_steps(&plan);
    let first_start = steps.iter().find(|s| s.ends_with(".start-new")).unwrap();

    // Machine A applies and dies inside the downtime window.
    let killed = omsup_env(
        &["apply", "-f", &plan, "--yes", "--state-dir", &a],
        &[("OMSUP_FAILPOINTS", &format!("before:{first_start}"))],
    );
    assert_eq!(killed.code, -1, "{}", show(&killed));
    assert!(killed.stderr.contains("failpoint"), "{}", show(&killed));

    // Machine B sees the run and the dead holder's lock in the server.
    let status = json_of(&["status", "-f", &plan, "--state-dir", &b, "--format", "json"]);
    assert_eq!(status["run"]["result"], "interrupted", "{status:#}");
    let run_id = status["run"]["run_id"].as_str().unwrap().to_owned();
    let lock = &status["lock"];
    assert_eq!(lock["held_in"], "meta_db", "{status:#}");
    assert_eq!(lock["run_id"], run_id.as_str(), "{status:#}");
    assert_eq!(lock["stale"], true, "the holder is dead: {status:#}");
    let lock_id = lock["lock_id"].as_str().unwrap().to_owned();
    let human = omsup(&["status", "-f", &plan, "--state-dir", &b]);
    assert_eq!(human.code, 0, "{}", show(&human));
    for part in [
        format!("lock: held by run `{run_id}` (apply, lock `{lock_id}`) of user `"),
        format!("pid {}", lock["pid"]),
        "since ".to_owned(),
        "last heartbeat ".to_owned(),
        "(in the meta database server: database `omsup_state` on `".to_owned(),
    ] {
        assert!(human.stdout.contains(&part), "`{part}`: {}", show(&human));
    }
    let history = json_of(&[
        "history",
        "-f",
        &plan,
        "--state-dir",
        &b,
        "--format",
        "json",
    ]);
    assert_eq!(history["runs"].as_array().unwrap().len(), 1, "{history:#}");

    // B resumes A's run (taking over the stale lock by its id) and finishes the upgrade.
    let resumed = omsup(&[
        "resume",
        "-f",
        &plan,
        "--yes",
        "--state-dir",
        &b,
        "--force-unlock",
        &lock_id,
    ]);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));
    assert!(resumed.stderr.contains(&run_id), "{}", show(&resumed));
    assert_upgraded(&world, &before, "resumed from another machine").await;

    // A rolls back the run B finished.
    let rolled_back = omsup(&["rollback", "-f", &plan, "--yes", "--state-dir", &a]);
    assert_eq!(rolled_back.code, 0, "{}", show(&rolled_back));
    assert_back_to_original(&world, &original, "rolled back from the first machine").await;

    // One history for both machines, and no local journal on either.
    for dir in [&a, &b] {
        let history = json_of(&[
            "history",
            "-f",
            &plan,
            "--state-dir",
            dir,
            "--format",
            "json",
        ]);
        let runs = history["runs"].as_array().unwrap();
        let kinds: Vec<&str> = runs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["apply", "rollback"], "{history:#}");
        let results: Vec<&str> = runs.iter().map(|r| r["result"].as_str().unwrap()).collect();
        assert_eq!(results, ["succeeded", "succeeded"], "{history:#}");
        let journals = omsup_journal::journals_in(std::path::Path::new(dir)).unwrap();
        assert_eq!(
            journals,
            Vec::<String>::new(),
            "no local journal in `{dir}`"
        );
    }
}

/// Issue 13: `omsup state migrate` moves a deployment's history to the meta database server
/// and back without losing any of it, and never merges into a journal that has runs.
#[tokio::test]
async fn state_migrate_moves_the_history_there_and_back_identically() {
    let world = up(WorldSpec::two_nodes()).await;
    let local_plan = crate::apply::plan_arg(&world);
    let shared_plan = meta_db_plan(&world);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let [here, back] = [0, 1].map(|i| dirs[i].path().join("state").display().to_string());
    let applied = omsup(&["apply", "-f", &local_plan, "--yes", "--state-dir", &here]);
    assert_eq!(applied.code, 0, "{}", show(&applied));
    let history = |plan: &str, dir: &str| {
        json_of(&[
            "history",
            "-f",
            plan,
            "--state-dir",
            dir,
            "--format",
            "json",
        ])
    };
    let original = history(&local_plan, &here);
    assert_eq!(
        original["runs"].as_array().unwrap().len(),
        1,
        "{original:#}"
    );

    let same = omsup(&[
        "state",
        "migrate",
        "--to",
        "local",
        "-f",
        &local_plan,
        "--state-dir",
        &here,
    ]);
    assert_eq!(
        same.code,
        3,
        "the plan keeps it local already: {}",
        show(&same)
    );

    let there = omsup(&[
        "state",
        "migrate",
        "--to",
        "meta_db",
        "-f",
        &local_plan,
        "--state-dir",
        &here,
    ]);
    assert_eq!(there.code, 0, "{}", show(&there));
    assert!(there.stderr.contains("1 runs and "), "{}", show(&there));
    assert_eq!(
        history(&shared_plan, &back),
        original,
        "identical in the server"
    );

    let again = omsup(&[
        "state",
        "migrate",
        "--to",
        "meta_db",
        "-f",
        &local_plan,
        "--state-dir",
        &here,
    ]);
    assert_eq!(again.code, 3, "never merged: {}", show(&again));
    assert!(
        again.stderr.contains("already holds 1 run"),
        "{}",
        show(&again)
    );

    let home = omsup(&[
        "state",
        "migrate",
        "--to",
        "local",
        "-f",
        &shared_plan,
        "--state-dir",
        &back,
    ]);
    assert_eq!(home.code, 0, "{}", show(&home));
    assert_eq!(
        history(&local_plan, &back),
        original,
        "identical back in a local file"
    );
    let status = json_of(&[
        "status",
        "-f",
        &local_plan,
        "--state-dir",
        &back,
        "--format",
        "json",
    ]);
    assert_eq!(status["run"]["result"], "succeeded", "{status:#}");
    let steps = status["run"]["steps"].as_array().unwrap();
    assert!(steps.len() > 5, "{status:#}");
    assert!(
        steps.iter().all(|step| step["state"] == "succeeded"),
        "every step's events came along: {status:#}"
    );
}
