//! `deploy/dev bench`: the broker's floor and Tasker's diamond, measured in
//! one run on the same RabbitMQ and Redis, printed side by side.

use std::collections::BTreeMap as HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tasker_e2e::bench::{self, Processes, Report};

#[derive(Parser)]
#[command(about = "Measures the broker's own floor for one step and Tasker's diamond, in one run")]
struct Args {
    /// Round trips / tasks measured one at a time, for the latencies.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Seconds each throughput window runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// The large number of diamonds in flight at once, for the cost at scale
    /// (compared with 100 in flight).
    #[arg(long, default_value_t = 10_000)]
    scale: usize,
    /// Skip Celery (which needs python3 and PyPI for its virtual environment).
    #[arg(long)]
    no_celery: bool,
    /// Give Celery's configurations longer windows and more samples
    /// (about 3 minutes rather than 1.5).
    #[arg(long)]
    celery_full: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let duration = Duration::from_secs_f64(args.seconds);

    eprintln!("bench: baseline (broker + one Lua call), 256 in flight for {duration:?}, to warm up");
    let mut rig = bench::Rig::start().await?;
    rig.throughput(256, duration).await?;

    let node = std::env::current_exe()?.with_file_name("chaos-node");
    let processes = Processes::start(&node, &out_dir, 1, 1).await?;
    let tasker = processes.labelled();
    eprintln!(
        "bench: diamond on 1 coordinator + 1 worker, {} tasks one at a time, each after one of the baseline's \
         round trips; then windows 32, 128, 256, each followed by one of the baseline at 256",
        args.samples
    );
    let mut metered = tasker.clone();
    metered.extend(bench::server_processes("bench (client)"));
    // Over the whole phase, only Tasker's own processes: the servers and
    // this process serve the baseline's round trips too.
    let meter = bench::CpuMeter::start(&tasker);
    let windows = [32, 128, 256];
    let (diamond, paired) = bench::diamond(
        &processes.namespace,
        args.samples,
        &windows,
        duration,
        &metered,
        Some(&mut rig),
    )
    .await?;
    rig.stop().await;
    let paired = paired.expect("the baseline was taken in turns with the diamonds");
    let best_window = (0..diamond.throughput.len())
        .max_by(|&a, &b| {
            diamond.throughput[a]
                .per_second
                .total_cmp(&diamond.throughput[b].per_second)
        })
        .expect("windows were measured");
    let baseline = bench::Baseline {
        latency: paired.latency,
        throughput: paired.windows[best_window].clone(),
        windows: paired.windows,
    };
    // The latency phase's steps count too: samples + 20 warm-up tasks.
    let tasks: f64 = diamond
        .throughput
        .iter()
        .map(|t| t.per_second * args.seconds)
        .sum::<f64>()
        + (args.samples + 20) as f64;
    let cpu_us_per_step = meter.per_step(tasks * bench::DIAMOND_STEPS as f64);
    let coordinator_rss_mib = bench::rss_bytes(tasker[0].1).unwrap_or(0) as f64 / (1024.0 * 1024.0);

    let best = diamond
        .throughput
        .iter()
        .map(|t| t.per_second)
        .fold(0.0, f64::max);
    let mut ratios = HashMap::new();
    ratios.insert(
        "steps_per_s_vs_baseline".to_owned(),
        best * 5.0 / baseline.throughput.per_second,
    );
    ratios.insert(
        "diamond_p50_vs_4x_baseline_p50".to_owned(),
        diamond.latency.p50_ms / (4.0 * baseline.latency.p50_ms),
    );
    ratios.insert(
        "diamond_p99_vs_4x_baseline_p50".to_owned(),
        diamond.latency.p99_ms / (4.0 * baseline.latency.p50_ms),
    );
    eprintln!("bench: 10-step chain and 50-way fan-in");
    let shapes = bench::shapes(&processes.namespace, args.samples / 3).await?;
    eprintln!(
        "bench: CPU per step with 100 diamonds in flight (20 batches), then {} at once",
        args.scale
    );
    let scale = vec![
        bench::scale(&processes.namespace, 100, 20, &tasker).await?,
        bench::scale(&processes.namespace, args.scale, 1, &tasker).await?,
    ];
    processes.stop().await;

    eprintln!("bench: Redis memory per in-flight diamond (1 coordinator, no worker)");
    let idle = Processes::start(&node, &out_dir, 1, 0).await?;
    let redis_bytes_per_diamond = bench::redis_bytes_per_diamond(&idle.namespace, 1000).await?;
    idle.stop().await;

    eprintln!("bench: diamond on 2 coordinators + 2 workers, windows 32, 128, 256");
    let scaled = Processes::start(&node, &out_dir, 2, 2).await?;
    let diamond_2x2 = bench::diamond(&scaled.namespace, 20, &windows, duration, &[], None)
        .await?
        .0
        .throughput;
    scaled.stop().await;

    let celery = if args.no_celery {
        None
    } else {
        eprintln!("bench: Celery's canvas diamond on the same RabbitMQ and Redis (tests/bench/celery)");
        Some(bench::celery(
            &root,
            args.samples,
            args.seconds,
            args.celery_full,
        )?)
    };
    if let Some(c) = &celery {
        let per_second = c["best"]["per_second"].as_f64().unwrap_or(f64::NAN);
        let p50 = c["latency"]["p50_ms"].as_f64().unwrap_or(f64::NAN);
        ratios.insert("diamonds_per_s_vs_celery".to_owned(), best / per_second);
        ratios.insert(
            "celery_p50_vs_diamond_p50".to_owned(),
            p50 / diamond.latency.p50_ms,
        );
    }
    let total = |s: &bench::Scale| s.cpu_us_per_step["coordinator"] + s.cpu_us_per_step["worker"];
    ratios.insert(
        format!("cpu_per_step_{}_vs_100_in_flight", args.scale),
        total(&scale[1]) / total(&scale[0]),
    );

    let report = Report {
        baseline,
        diamond,
        ratios,
        cpu_us_per_step,
        coordinator_rss_mib,
        shapes,
        diamond_2x2,
        redis_bytes_per_diamond,
        scale,
        celery,
    };

    let b = &report.baseline;
    let d = &report.diamond;
    println!();
    println!("{:<48} {:>12} {:>12}", "", "baseline", "tasker");
    println!(
        "{:<48} {:>12.3} {:>12.3}",
        "p50 ms (baseline: one step; tasker: diamond)", b.latency.p50_ms, d.latency.p50_ms
    );
    println!(
        "{:<48} {:>12.3} {:>12.3}",
        "p99 ms", b.latency.p99_ms, d.latency.p99_ms
    );
    println!("{:<48} {:>12} {:>12.3}", "p99.9 ms", "", d.latency.p999_ms);
    println!(
        "{:<48} {:>12.0} {:>12.0}",
        "steps/s (baseline: 256 in flight; tasker: best window)",
        b.throughput.per_second,
        best * 5.0
    );
    // Each window of the diamond, beside the baseline's window right after.
    for (t, b) in d.throughput.iter().zip(&report.baseline.windows) {
        println!(
            "{:<48} {:>12.0} {:>12.1}",
            format!(
                "diamonds/s at {} in flight (baseline: steps/s after)",
                t.in_flight
            ),
            b.per_second,
            t.per_second
        );
    }
    for (k, v) in &report.ratios {
        println!("{k:<48} {v:>25.3}");
    }
    for (k, v) in &report.cpu_us_per_step {
        if k == "coordinator" || k == "worker" {
            println!("{:<48} {v:>25.1}", format!("{k} CPU µs per step"));
        }
    }
    // Every process a step costs CPU in, the baseline's beside Tasker's at
    // 256 in flight: on two shared cores, throughput follows the sum.
    let (base_cpu, saturated) = (
        &b.throughput.cpu_us_per_step,
        &d.throughput.last().expect("a window ran").cpu_us_per_step,
    );
    let cpu = |m: &HashMap<String, f64>, k: &str| m.get(k).map_or(String::new(), |v| format!("{v:.1}"));
    for k in ["rabbitmq", "redis", "coordinator", "worker"] {
        println!(
            "{:<48} {:>12} {:>12}",
            format!("CPU µs per step at 256 in flight: {k}"),
            cpu(base_cpu, k),
            cpu(saturated, k)
        );
    }
    let own = |m: &HashMap<String, f64>| {
        m.iter()
            .filter(|(k, _)| k.starts_with("bench"))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    println!(
        "{:<48} {:>12.1} {:>12.1}",
        "  ...: the bench (baseline: both hops; else client)",
        own(base_cpu),
        own(saturated)
    );
    let sum = |m: &HashMap<String, f64>| m.values().sum::<f64>();
    println!(
        "{:<48} {:>12.1} {:>12.1}",
        "  ...: all of them",
        sum(base_cpu),
        sum(saturated)
    );
    println!(
        "{:<48} {:>25.1}",
        "coordinator RSS MiB", report.coordinator_rss_mib
    );
    println!(
        "{:<48} {:>25.3}",
        "10-step chain p50 ms", report.shapes.chain_10.p50_ms
    );
    println!(
        "{:<48} {:>25.3}",
        "50-way join p50 ms, from the last branch's end", report.shapes.join_50.p50_ms
    );
    println!(
        "{:<48} {:>25.3}",
        "50-way join p50 ms, from the join's release", report.shapes.join_50_from_release.p50_ms
    );
    for t in &report.diamond_2x2 {
        println!(
            "{:<48} {:>25.1}",
            format!("2+2 diamonds/s at {} in flight", t.in_flight),
            t.per_second
        );
    }
    println!(
        "{:<48} {:>25.0}",
        "Redis bytes per in-flight diamond", report.redis_bytes_per_diamond
    );
    for s in &report.scale {
        for (k, v) in &s.cpu_us_per_step {
            println!(
                "{:<48} {v:>25.1}",
                format!("{k} CPU µs per step, {} in flight", s.in_flight)
            );
        }
        println!(
            "{:<48} {:>25.1}",
            format!("coordinator peak RSS MiB, {} in flight", s.in_flight),
            s.coordinator_peak_rss_mib
        );
        let e = &s.engines;
        for (what, v) in [
            ("Redis calls per step", e.redis_calls_per_step),
            ("Redis bytes in per step", e.redis_bytes_in_per_step),
            ("Redis bytes out per step", e.redis_bytes_out_per_step),
            ("RabbitMQ bytes in per step", e.rabbitmq_bytes_in_per_step),
            ("RabbitMQ bytes out per step", e.rabbitmq_bytes_out_per_step),
        ] {
            println!("{:<48} {v:>25.1}", format!("{what}, {} in flight", s.in_flight));
        }
    }
    if let Some(c) = &report.celery {
        println!();
        println!("{:<48} {:>12} {:>12}", "", "celery", "tasker");
        println!(
            "{:<48} {:>12.3} {:>12.3}",
            "diamond p50 ms at 1 in flight",
            c["latency"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
            d.latency.p50_ms
        );
        println!(
            "{:<48} {:>12.3} {:>12.3}",
            "diamond p99 ms at 1 in flight",
            c["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
            d.latency.p99_ms
        );
        println!(
            "{:<48} {:>12.1} {:>12.1}",
            "diamonds/s, best configuration",
            c["best"]["per_second"].as_f64().unwrap_or(f64::NAN),
            best
        );
        println!("celery's best: {}", c["best"]["config"].as_str().unwrap_or("?"));
    }
    let json = serde_json::to_string(&report)?;
    println!("{json}");
    std::fs::write(out_dir.join("latest.json"), &json)?;
    Ok(())
}
