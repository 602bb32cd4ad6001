// zkr-sim: runs the simulator's teaching scenarios and prints their timelines.
//
//   zkr-sim list                               the scenarios, one line each
//   zkr-sim run NAME --seed N [--trace FILE]   run one: timeline + summary on stdout,
//                                              JSON lines to FILE
//   zkr-sim --help
//
// The same NAME and seed give the same output, byte for byte, on every run: a failure seen
// once is replayed by its seed. Exit status: 0 the scenario's story happened as told;
// 1 it did not (a check failed, printed in the summary) or an I/O or simulator error;
// 2 a usage error (bad command, unknown scenario, bad or missing seed, extra arguments).
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "scenarios.hpp"

namespace {

namespace tools = zkr::sim::tools;

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

constexpr std::string_view usage_text =
    "usage: zkr-sim list\n"
    "       zkr-sim run NAME --seed N [--trace FILE]\n"
    "       zkr-sim --help\n";

void print_help() {
  std::cout << usage_text
            << "\n"
               "Runs zkr's deterministic ZooKeeper simulator through teaching scenarios, in virtual\n"
               "time (a minute of cluster life takes milliseconds), no ZooKeeper server needed.\n"
               "\n"
               "commands:\n"
               "  list                  the scenarios, with a one-line description each\n"
               "  run NAME --seed N     runs scenario NAME with seed N (0 to 18446744073709551615):\n"
               "                        its timeline (one line per event: virtual seconds, actor,\n"
               "                        kind, fields) then a summary of what each client saw and why\n"
               "  --trace FILE          with run: also writes the trace as JSON lines to FILE\n"
               "  --help, -h            this text\n"
               "\n"
               "The same NAME and seed give the same output, byte for byte: a failure is replayed by\n"
               "running it again with the seed it printed.\n"
               "\n"
               "exit status: 0 the scenario's story happened as told; 1 it did not (the failed checks\n"
               "are printed in the summary), or an I/O or simulator error; 2 a usage error.\n";
}

/// One line on stderr, then the usage exit code.
int usage_error(const std::string& message) {
  std::cerr << "zkr-sim: " << message << " (try 'zkr-sim --help')\n";
  return exit_usage;
}

/// A decimal seed: digits only, 0 to 2^64-1.
std::optional<std::uint64_t> parse_seed(std::string_view text, std::string& why) {
  if (text.empty()) {
    why = "empty";
    return std::nullopt;
  }
  for (const char ch : text) {
    if (ch < '0' || ch > '9') {
      why = "not a decimal number";
      return std::nullopt;
    }
  }
  std::uint64_t v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec == std::errc::result_out_of_range) {
    why = "out of range (0 to " + std::to_string(std::numeric_limits<std::uint64_t>::max()) + ")";
    return std::nullopt;
  }
  if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) {
    why = "not a decimal number";
    return std::nullopt;
  }
  return v;
}

/// Flushes stdout and reports a write error (e.g. a full disk or a closed pipe).
int finish_stdout(int code) {
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "zkr-sim: cannot write to standard output\n";
    return exit_failed;
  }
  return code;
}

int cmd_list(const std::vector<std::string_view>& args) {
  if (!args.empty()) return usage_error("unexpected argument '" + std::string(args.front()) + "' after list");
  std::size_t width = 0;
  for (const auto& s : tools::scenarios()) width = std::max(width, s.name.size());
  for (const auto& s : tools::scenarios()) {
    std::cout << "  " << s.name << std::string(width - s.name.size() + 2, ' ') << s.description << '\n';
  }
  return finish_stdout(exit_ok);
}

int cmd_run(const std::vector<std::string_view>& args) {
  std::optional<std::string_view> name;
  std::optional<std::uint64_t> seed;
  std::optional<std::string> trace_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    std::optional<std::string_view> inline_value;
    if (a.starts_with("--") && a.find('=') != std::string_view::npos) {
      inline_value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
    }
    // The option's value: after '=' or the next argument.
    const auto value = [&]() -> std::optional<std::string_view> {
      if (inline_value) return inline_value;
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (a == "--seed") {
      if (seed) return usage_error("--seed given twice");
      const auto v = value();
      if (!v) return usage_error("--seed needs a value");
      std::string why;
      seed = parse_seed(*v, why);
      if (!seed) return usage_error("bad seed '" + std::string(*v) + "': " + why);
    } else if (a == "--trace") {
      if (trace_path) return usage_error("--trace given twice");
      const auto v = value();
      if (!v || v->empty()) return usage_error("--trace needs a file name");
      trace_path = std::string(*v);
    } else if (a.starts_with("-") && a.size() > 1) {
      return usage_error("unknown option '" + std::string(args[i]) + "' for run");
    } else if (!name) {
      name = a;
    } else {
      return usage_error("unexpected argument '" + std::string(a) + "'");
    }
  }
  if (!name) return usage_error("run needs a scenario name (one of: " + tools::scenario_names() + ")");
  const tools::scenario* sc = tools::find_scenario(*name);
  if (sc == nullptr) {
    return usage_error("unknown scenario '" + std::string(*name) + "' (known: " + tools::scenario_names() + ")");
  }
  if (!seed) return usage_error("run needs --seed N (a number from 0 to 18446744073709551615)");

  std::ofstream trace_file;
  if (trace_path) {
    errno = 0;
    trace_file.open(*trace_path, std::ios::binary | std::ios::trunc);
    if (!trace_file) {
      const int e = errno;
      std::cerr << "zkr-sim: cannot write trace file '" << *trace_path << "': "
                << (e != 0 ? std::strerror(e) : "open failed") << '\n';
      return exit_failed;
    }
  }

  tools::run_config cfg;
  cfg.seed = *seed;
  cfg.out = &std::cout;
  cfg.json = trace_path ? &trace_file : nullptr;
  tools::run_result result;
  try {
    result = sc->run(cfg);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "zkr-sim: scenario " << sc->name << " with seed " << *seed << " failed: " << e.what()
              << " (replay: zkr-sim run " << sc->name << " --seed " << *seed << ")\n";
    return exit_failed;
  }
  if (trace_path) {
    trace_file.close();
    if (!trace_file) {
      std::cerr << "zkr-sim: error writing trace file '" << *trace_path << "'\n";
      return finish_stdout(exit_failed);
    }
  }
  if (!result.ok) {
    std::cout.flush();
    std::cerr << "zkr-sim: scenario " << sc->name << " with seed " << *seed << ": " << result.failed_checks.size()
              << " check(s) failed, first: " << result.failed_checks.front() << '\n';
    return finish_stdout(exit_failed);
  }
  return finish_stdout(exit_ok);
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return usage_error("missing command: list or run");
  for (const auto a : args) {
    if (a == "--help" || a == "-h") {
      print_help();
      return finish_stdout(exit_ok);
    }
  }
  const std::string_view cmd = args.front();
  args.erase(args.begin());
  if (cmd == "help") {
    if (!args.empty()) return usage_error("unexpected argument '" + std::string(args.front()) + "' after help");
    print_help();
    return finish_stdout(exit_ok);
  }
  if (cmd == "list") return cmd_list(args);
  if (cmd == "run") return cmd_run(args);
  return usage_error("unknown command '" + std::string(cmd) + "' (commands: list, run)");
}
