//! The bench's hand-written floors answer every call with its own key's value, concurrent calls
//! included: a floor that mixed up its replies would still report a rate.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cache_bench::{payload, L2Floor, SocketFloor};
use cache_test_harness::RedisServer;

/// 64 tasks, each reading 50 keys through `get`, every value checked against its key.
async fn every_call_gets_its_own_value<F, Fut>(get: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = cache_bench::Payload> + Send,
{
    let tasks: Vec<_> = (0..64u64)
        .map(|task| {
            let get = get.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let id = (task * 7919 + i) % 200;
                    assert_eq!(get(id).await, payload(id), "task {task}, key {id}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_and_mget_floors_answer_each_call_with_its_key() {
    let redis = RedisServer::start();
    let mut conn = redis.conn().await;
    for i in 0..200 {
        cache_bench::write_raw(&mut conn, i).await;
    }

    let socket = Arc::new(SocketFloor::new());
    let serving = tokio::spawn(socket.clone().serve(format!("127.0.0.1:{}", redis.port())));
    let s = socket.clone();
    every_call_gets_its_own_value(move |i| {
        let s = s.clone();
        async move { s.get(i).await }
    })
    .await;
    serving.abort();
    assert!(socket.mgets() > 0 && socket.mgets() <= 64 * 50);

    let floor = Arc::new(L2Floor::new(conn, 4));
    every_call_gets_its_own_value(move |i| {
        let f = floor.clone();
        async move { f.get(i).await }
    })
    .await;
}
