//! The health probe against real simulator containers whose nodes mount an HTTPS certificate:
//! HTTPS chosen from the container's mounts, the mounted certificate pinned (even one the same
//! CA signed for another node is refused), CA verification, plain HTTP refused, chunked answers
//! read, and a 500 never healthy even when its body says so.

use omsup_exec::health::{HealthEndpoint, ProbeError, Trust};
use omsup_model::plan::{HealthCheck, TlsVerify};
use omsup_testworld::{World, WorldSpec};

#[tokio::test]
async fn health_over_https_trusts_the_mounted_certificate_and_reads_statuses_and_chunks() {
    let world = World::up(WorldSpec {
        https: true,
        // Hosts of its own: a fresh daemon loads this build's simulator images (a shared
        // host keeps whatever image an earlier build tagged).
        private_hosts: true,
        projects: 1,
        heartbeat_rows_per_region: 10,
        ..WorldSpec::two_nodes()
    })
    .await
    .unwrap_or_else(|e| panic!("cannot deploy a test world: {e}"));
    let node = &world.nodes[0];
    let certificate = node.certificate.clone().expect("an HTTPS world");
    let docker = node.docker().unwrap();
    let of_container = |check: HealthCheck| {
        let docker = docker.clone();
        let container = world.container.clone();
        let ip = node.ip.clone();
        async move {
            HealthEndpoint::of_container(&docker, &container, &ip, 8089, &check)
                .await
                .unwrap()
        }
    };

    // The default: HTTPS (the container mounts a certificate), the mounted one pinned.
    let endpoint = of_container(HealthCheck::default()).await;
    assert_eq!(
        endpoint.url(),
        format!("https://{}:8089/oms/health", node.ip)
    );
    assert!(endpoint.probe().await.unwrap());

    // Plain HTTP gets nginx's 400, never a verdict.
    match HealthEndpoint::http(&node.ip, 8089).probe().await {
        Err(ProbeError::Status(status)) => assert_eq!(status.as_u16(), 400),
        other => panic!("plain HTTP to an HTTPS-only node: {other:?}"),
    }

    // Another certificate than the mounted one is refused, even one of the same CA.
    let other_cert = std::fs::read(&world.nodes[1].certificate.as_ref().unwrap().cert).unwrap();
    let pinned_other = HealthEndpoint::https(
        &node.ip,
        8089,
        Trust::exactly_from_pem(&other_cert).unwrap(),
    )
    .unwrap();
    match pinned_other.probe().await {
        Err(error @ ProbeError::Tls(_)) => assert!(
            error
                .to_string()
                .contains("other than the one its container mounts"),
            "{error}"
        ),
        other => panic!("another node's certificate was accepted: {other:?}"),
    }

    // `tls_verify = "ca"`: the world's CA signed it for this IP; another CA did not.
    let by_ca = of_container(HealthCheck {
        tls_verify: TlsVerify::Ca,
        ca_file: Some(certificate.ca.clone()),
    })
    .await;
    assert!(by_ca.probe().await.unwrap());
    let foreign_ca = std::fs::read(&world.services.client.tls_ca).unwrap();
    let by_foreign_ca =
        HealthEndpoint::https(&node.ip, 8089, Trust::roots_from_pem(&foreign_ca).unwrap()).unwrap();
    assert!(
        matches!(by_foreign_ca.probe().await, Err(ProbeError::Tls(_))),
        "a certificate of another CA was accepted"
    );

    // `tls_verify = "off"` accepts it.
    let unverified = of_container(HealthCheck {
        tls_verify: TlsVerify::Off,
        ca_file: None,
    })
    .await;
    assert!(unverified.probe().await.unwrap());

    // A chunked answer (curl, an independent client, sees the chunking) is read.
    std::fs::write(node.run_dir().join("sim-health-chunked"), "").unwrap();
    let answer = node.health_answer().await.unwrap();
    assert!(
        answer.has_header("Transfer-Encoding", "chunked"),
        "{:?}",
        answer.headers
    );
    assert!(endpoint.probe().await.unwrap());

    // A 500 is not healthy, although its body says `"healthy": true`.
    std::fs::write(node.run_dir().join("sim-health-status"), "500").unwrap();
    let answer = node.health_answer().await.unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.body).unwrap()["data"]["healthy"],
        true,
        "the body must say healthy for this test to mean anything"
    );
    match endpoint.probe().await {
        Err(ProbeError::Status(status)) => assert_eq!(status.as_u16(), 500),
        other => panic!("a 500 answer: {other:?}"),
    }
    world.down().await.unwrap();
}
