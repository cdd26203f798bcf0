//! A setting may name several nodes of a RabbitMQ cluster, separated by
//! commas: a process connects to one that answers, and says which it tried
//! when none does.

use tasker_e2e::amqp_url;
use tasker_e2e::process::free_addr;
use tasker_runtime::Error;
use tasker_runtime::broker::{Broker, broker_urls, redact_url};

/// An AMQP URL on a loopback port no one listens on.
fn dead_url() -> String {
    format!("amqp://guest:guest@{}/%2f", free_addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_connects_to_the_node_that_answers_whichever_it_tries_first() {
    let live = broker_urls(&amqp_url())[0].to_owned();
    let urls = format!("{},{live},{}", dead_url(), dead_url());
    // Each connection starts one further along the list: three connections
    // start at each of the three nodes once.
    for _ in 0..3 {
        let broker = Broker::connect(&urls, "test-several-urls").await.unwrap();
        assert_eq!(broker.url(), redact_url(&live));
        assert!(broker.channel().await.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_node_answers_the_error_names_every_url_tried() {
    let (first, second) = (dead_url(), dead_url());
    let Err(error) = Broker::connect(&format!("{first}, {second}"), "test-no-node").await else {
        panic!("connected to a port no one listens on");
    };
    let Error::Amqp { url, .. } = &error else {
        panic!("not an unreachable broker: {error:?}");
    };
    for tried in [&first, &second] {
        assert!(url.contains(&redact_url(tried)), "{url} lacks {tried}");
    }
    assert!(!error.to_string().contains("guest:guest"), "{error}");
}

#[tokio::test]
async fn a_mistyped_url_anywhere_in_the_list_is_a_mistake_at_once() {
    let live = broker_urls(&amqp_url())[0].to_owned();
    let Err(error) = Broker::connect(&format!("{live},http://not-amqp"), "test-typo").await else {
        panic!("a list with a URL that is not AMQP was accepted");
    };
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}
