fn main() -> anyhow::Result<()> {
    ltm::device::tune_allocator();
    let c = ltm::model::Config::paper_shape(3);
    let ck = ltm::model::Checkpoint::random(c, 0)?;
    let m = ck.model(candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let r = ltm::bench::run(&m, &ltm::bench::BenchSettings { prompt_len: 256, steps: 8, new_tokens: 64, samples: 1 }, "cpu")?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
