//! The fault suite: "no event is lost" under rebalances, broker faults and crashes, on the
//! built `hookline run` binary (several processes in one consumer group), a three-broker
//! Kafka-protocol cluster with fault injection (librdkafka's mock cluster, in this process)
//! and receivers on loopback, while events flow.
//!
//! Each scenario prints its account (events, faults injected, deliveries expected and made,
//! lost, duplicates) and fails if anything was lost. The scenarios run one at a time (they
//! start several processes each). CI runs the bounded default; a longer run is documented in
//! docs/testing.md ("The fault suite").

mod common;
mod faults {
    pub mod world;
}

use std::time::Duration;

use faults::world::{knob, stop_gracefully, World, GRACE, PARTITIONS};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio::sync::Mutex;

/// One scenario at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Instances join and leave (SIGTERM and SIGKILL) while a slow subscription, a dedup route
/// and a retry tier hold work: two instances, then three, then members replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_with_work_in_flight_lose_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let w = World::new("rebalance").await;
    let mut a = w.router();
    let mut b = w.router();
    let producing = w.produce(Duration::from_secs(20), 0);

    w.produced_at_least(w.events / 5).await;
    let c = w.router();
    w.fault("a third instance joins");

    w.produced_at_least(2 * w.events / 5).await;
    stop_gracefully(a);
    w.fault("SIGTERM of an instance");
    a = w.router();
    w.fault("it rejoins");

    w.produced_at_least(3 * w.events / 5).await;
    b.kill();
    w.fault("SIGKILL of an instance");
    tokio::time::sleep(w.pause(500, 2000)).await;
    b = w.router();
    w.fault("it rejoins");

    w.produced_at_least(4 * w.events / 5).await;
    stop_gracefully(c);
    w.fault("SIGTERM: back to two instances");

    producing.await.unwrap();
    w.account("rebalance", Duration::from_secs(300)).await;
    stop_gracefully(a);
    stop_gracefully(b);
}

/// Brokers go down and come back, requests fail, and the dead-letter topic is unavailable for
/// a while, during load (with invalid messages to dead-letter). Nothing is lost, the routers
/// recover by themselves, and each stops within the grace and its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_faults_lose_nothing_and_routers_recover_by_themselves() {
    let _one = ONE_AT_A_TIME.lock().await;
    let w = World::new("broker faults").await;
    let cluster = w.h.broker.cluster();
    // Half the source partitions on broker 2; the dead-letter topic on broker 3; the rest
    // on broker 1.
    for p in 0..PARTITIONS {
        let leader = if p % 2 == 0 { 2 } else { 1 };
        cluster
            .partition_leader(common::fixtures::TOPIC, p, Some(leader))
            .unwrap();
    }
    cluster.partition_leader(common::DLQ, 0, Some(3)).unwrap();
    let a = w.router();
    let b = w.router();
    let producing = w.produce(Duration::from_secs(25), 25);

    w.produced_at_least(w.events / 6).await;
    cluster.broker_down(2).unwrap();
    w.fault("broker 2 down (leader of half the source partitions)");
    tokio::time::sleep(w.pause(2000, 4000)).await;
    cluster.broker_up(2).unwrap();
    w.fault("broker 2 up");

    w.produced_at_least(2 * w.events / 6).await;
    cluster.broker_down(3).unwrap();
    w.fault("dead-letter topic unavailable (broker 3 down)");
    tokio::time::sleep(w.pause(4000, 6000)).await;
    cluster.broker_up(3).unwrap();
    w.fault("dead-letter topic back");

    w.produced_at_least(3 * w.events / 6).await;
    use RDKafkaRespErr::*;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 20],
    );
    w.fault("20 produce requests fail (not enough replicas)");
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 10],
    );
    w.fault("10 fetch requests fail (not leader)");
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 5],
    );
    w.fault("5 offset commits fail (timed out)");

    w.produced_at_least(4 * w.events / 6).await;
    cluster.request_errors(RDKafkaApiKey::Produce, &[RD_KAFKA_RESP_ERR__TRANSPORT; 5]);
    w.fault("5 produce requests cut the connection");
    cluster
        .broker_round_trip_time(1, Duration::from_millis(300))
        .unwrap();
    w.fault("broker 1 slow (300 ms round trips)");
    tokio::time::sleep(w.pause(2000, 3000)).await;
    cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();

    producing.await.unwrap();
    w.account("broker faults", Duration::from_secs(300)).await;
    let invalid = w.invalid.load(std::sync::atomic::Ordering::SeqCst);
    let lettered = w.dead_lettered("not-json", invalid);
    println!("broker faults: {invalid} invalid messages, {lettered} dead-lettered");
    assert!(
        lettered >= invalid,
        "invalid messages were not dead-lettered"
    );
    stop_gracefully(a);
    stop_gracefully(b);
}

/// SIGKILL at random moments, many times, while events flow and the backlog and the retry
/// tiers hold events. Zero lost; duplicates reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let w = World::new("crash loop").await;
    let kills = knob("HOOKLINE_FAULTS_KILLS", 10);
    let mut routers = vec![w.router(), w.router()];
    let producing = w.produce(Duration::from_secs(kills * 3), 0);
    let (mut with_backlog, mut with_retries) = (0, 0);
    for k in 0..kills {
        let victim = (k % 2) as usize;
        // At a random moment after the victim took partitions.
        common::wait::eventually_async(Duration::from_secs(60), || routers[victim].ready()).await;
        tokio::time::sleep(w.pause(500, 2500)).await;
        let (backlog, retries) = w.waiting();
        with_backlog += usize::from(backlog > 0);
        with_retries += usize::from(retries > 0);
        routers.remove(victim).kill();
        w.fault("SIGKILL");
        println!("  killed with {backlog} events in the backlog, {retries} in the retry tiers");
        routers.insert(victim, w.router());
    }
    println!(
        "crash loop: {kills} SIGKILLs, {with_backlog} with a non-empty backlog, {with_retries} with non-empty retry tiers"
    );
    producing.await.unwrap();
    w.account("crash loop", Duration::from_secs(300)).await;
    assert!(
        with_backlog > 0,
        "no kill happened while a backlog held events"
    );
    assert!(
        with_retries > 0,
        "no kill happened with the retry tiers in use"
    );
    for router in routers {
        stop_gracefully(router);
    }
    let _ = GRACE;
}
