// Chat with SmolLM2-135M-Instruct on lesson 07's model: the chat template, prefill, then
// one decode step per token, streamed as text, with prefill and decode speed at the end.
//
//   smollm_demo [--prompt TEXT] [--system TEXT] [--max-tokens N] [--temperature T]
//               [--top-p P] [--seed S] [--model PATH]
//
// ./learn demo builds it against the reference solutions and runs it; ./learn demo --mine
// against your lessons.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

// The lesson libraries are compiled with the tests' precompiled header, which includes
// doctest; its implementation (no main, no test) is linked here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "attn/timer.hpp"
#include "llama_model.hpp"
#include "tokenizer/gguf_tokenizer.hpp"

namespace {

struct Options {
  std::string prompt = "What is the capital of France, and what is it famous for?";
  std::string system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
  std::size_t max_tokens = 128;
  attn::Sampling sampling;  // greedy by default
  std::uint64_t seed = 0;
  std::filesystem::path model = attn::gguf::smollm2_model_path();
};

[[noreturn]] void usage(const std::string& error) {
  std::cerr << "smollm_demo: " << error << "\n"
            << "usage: smollm_demo [--prompt TEXT] [--system TEXT] [--max-tokens N]\n"
            << "                   [--temperature T (0 = greedy)] [--top-p P] [--seed S] [--model PATH]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage("option " + a + " needs a value");
    const std::string v = argv[++i];
    try {
      if (a == "--prompt") o.prompt = v;
      else if (a == "--system") o.system = v;
      else if (a == "--max-tokens") o.max_tokens = std::stoul(v);
      else if (a == "--temperature") o.sampling.temperature = std::stof(v);
      else if (a == "--top-p") o.sampling.top_p = std::stof(v);
      else if (a == "--seed") o.seed = std::stoull(v);
      else if (a == "--model") o.model = v;
      else usage("unknown option " + a);
    } catch (const std::logic_error&) {
      usage("option " + a + " needs a number, given '" + v + "'");
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    if (!std::filesystem::exists(o.model)) {
      std::cerr << "smollm_demo: the model is not at " << o.model.string()
                << "\n  fetch it with: python3 tools/fetch_model.py\n";
      return 1;
    }
    attn::Timer load;
    const auto file = attn::gguf::File::open(o.model);
    const auto tok = attn::tokenizer::tokenizer_from_gguf(file);
    const attn::LlamaModel model(attn::load_llama(file));
    const attn::LlamaConfig& c = model.config();
    std::fprintf(stderr, "SmolLM2-135M-Instruct: %zu layers, d_model %zu, H = %zu query heads, "
                 "G = %zu KV heads of D = %zu; loaded and dequantized in %.1f s\n",
                 c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, load.seconds());

    // The chat template of SmolLM2-Instruct (tokenizer.chat_template in the GGUF file).
    const std::string text = "<|im_start|>system\n" + o.system + "<|im_end|>\n<|im_start|>user\n" +
                             o.prompt + "<|im_end|>\n<|im_start|>assistant\n";
    std::vector<std::size_t> prompt;
    for (const auto id : tok.encode(text)) prompt.push_back(static_cast<std::size_t>(id));
    std::vector<std::size_t> stop;
    for (const char* s : {"<|im_end|>", "<|endoftext|>"})
      if (const auto id = tok.find(s)) stop.push_back(static_cast<std::size_t>(*id));

    std::cout << "user: " << o.prompt << "\nassistant: " << std::flush;
    attn::ModelCache cache = model.make_cache(1, prompt.size() + o.max_tokens);
    attn::tokenizer::TextStream stream(tok);
    attn::GenerationStats stats;
    attn::generate(model, prompt, o.max_tokens, cache, o.sampling, o.seed, stop,
                   [&](std::size_t id) {
                     if (std::find(stop.begin(), stop.end(), id) == stop.end())
                       std::cout << stream.push(static_cast<attn::tokenizer::TokenId>(id)) << std::flush;
                     return true;
                   },
                   &stats);
    std::cout << stream.flush() << "\n";
    const double decode_steps = stats.new_tokens > 1 ? double(stats.new_tokens - 1) : 0.0;
    std::fprintf(stderr,
                 "\nprefill: %zu tokens in %.2f s (%.1f tokens/s); decode: %.0f steps in %.2f s "
                 "(%.1f tokens/s); %s, KV cache %.2f MiB\n",
                 stats.prompt_tokens, stats.prefill_seconds,
                 double(stats.prompt_tokens) / std::max(stats.prefill_seconds, 1e-9), decode_steps,
                 stats.decode_seconds, decode_steps / std::max(stats.decode_seconds, 1e-9),
                 o.sampling.temperature == 0.0f ? "greedy" : "sampled",
                 double(cache.bytes_used()) / double(1 << 20));
    return 0;
  } catch (const attn::NotImplemented& e) {
    std::cerr << "\n" << e.what() << "\n(./learn demo without --mine runs the reference solutions)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "\nsmollm_demo: " << e.what() << "\n";
    return 1;
  }
}
