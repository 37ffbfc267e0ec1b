#pragma once
// A real `vcpclip serve` process on a free loopback port (serve.port 0: the binary prints the port
// it bound), its configuration for the tiny fixture model and a calibration of it, an HTTP client
// and raw-socket requests (for what a well-behaved client cannot send). Used by test_serve*.cpp.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../model/vcp_fixture.h"
#include "support/test_util.h"
#include "vcpclip/app/evaluate.h"
#include "vcpclip/app/synth.h"
#include "vcpclip/build_info.h"
#include "vcpclip/http_lib.h"

namespace serve_fixture {

namespace fs = std::filesystem;
namespace fx = vcp_fixture;

/// The run config of the fixture model (as tests/app/test_inferencer.cpp) plus a serve section.
inline std::string config_file(const std::string& name, const std::string& serve_section) {
  const auto path = fs::temp_directory_path() / (name + ".yaml");
  std::ofstream out(path);
  out << "runtime:\n  threads: 1\nmodel:\n  backbone: " << fx::path("tiny_vcp_clip.json")
      << "\n  weights: " << fx::path("tiny_vcp_clip.pt") << "\n  vocab: " << fx::vocab_path()
      << "\n  image_size: 64\n  features_list: [2, 3, 4]\nserve:\n  port: 0\n"
      << serve_section;
  return path.string();
}

/// A calibration of the fixture model (eval --calibration-out on a small synthetic set), made once per process.
inline const std::string& calibration() {
  static const std::string path = [] {
    const auto dir = fs::temp_directory_path() / "vcpclip_serve_cal";
    fs::remove_all(dir);
    vcpclip::data::SynthOptions o;
    o.layout = "mvtec", o.out = (dir / "synth").string(), o.classes = 1, o.images = 8, o.train_images = 0;
    o.size = 64, o.set = "target";
    std::ostringstream sink;
    vcpclip::app::run_synth(o, sink);
    vcpclip::app::EvalRequest r;
    r.runtime.threads = 1;
    r.model = fx::options();
    r.checkpoint = fx::path("tiny_vcp.pth");
    vcpclip::data::DataOptions d;
    d.layout = "mvtec", d.root = o.out, d.workers = 1;
    r.eval.data = d;
    r.out_dir = (dir / "eval").string();
    r.progress = false;
    r.calibration_out = (dir / "calibration.json").string();
    vcpclip::app::run_eval(r);
    return r.calibration_out;
  }();
  return path;
}

/// `vcpclip serve` as a child process (its output goes to a log file).
class ServerProcess {
 public:
  /// Starts `vcpclip serve -c config -k <fixture checkpoint> extra...` and waits until it printed its port.
  /// `nofile` > 0: the child's RLIMIT_NOFILE, soft and hard (a machine with few descriptors).
  /// `checkpoint`: another head than the VCP fixture's (e.g. another method's).
  ServerProcess(const std::string& config, const std::vector<std::string>& extra, const std::string& env_token = "",
                rlim_t nofile = 0, const std::string& checkpoint = "") {
    log_ = (fs::temp_directory_path() / ("serve_" + std::to_string(++counter()) + ".log")).string();
    std::vector<std::string> args{std::string(VCPCLIP_BINARY_DIR) + "/vcpclip",
                                  "serve",
                                  "-c",
                                  config,
                                  "-k",
                                  checkpoint.empty() ? fx::path("tiny_vcp.pth") : checkpoint};
    args.insert(args.end(), extra.begin(), extra.end());
    // Everything the child needs is prepared before fork(): the child only redirects and execs.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e)
      if (std::string(*e).rfind("VCPCLIP_SERVE_TOKEN=", 0) != 0) env_text.emplace_back(*e);
    if (!env_token.empty()) env_text.push_back("VCPCLIP_SERVE_TOKEN=" + env_token);
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      const rlimit limit{nofile, nofile};
      if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(126);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(fd);
    const std::regex re(R"(listening on http://[^:]+:([0-9]+)/)");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      const std::string text = log();
      if (std::regex_search(text, m, re))
        port_ = std::stoi(m[1]);
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return vcpclip::testing::slurp(log_); }

  /// Waits until /v2/health/ready answers 200 (false after `seconds`).
  bool wait_ready(int seconds = 120) const {
    httplib::Client c("127.0.0.1", port_);
    for (int i = 0; i < seconds * 10; ++i) {
      if (auto r = c.Get("/v2/health/ready"); r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void signal(int sig) const { kill(pid_, sig); }
  /// The exit status after the process ends (-1: killed by a signal or still running after `seconds`).
  int wait_exit(int seconds) {
    for (int i = 0; i < seconds * 20; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
};

/// Sends `bytes` on a fresh connection and reads the answer until the server closes it or
/// `seconds` pass. The write side stays open (cpp-httplib takes a half-closed socket for a gone
/// client and does not answer it); `hold_open` only documents a client that stops sending.
inline std::string raw_exchange(int port, const std::string& bytes, int seconds, bool hold_open = false) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "(connect failed)";
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  (void)hold_open;
  std::string out;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

/// A loopback connection the test holds (raw socket): for clients that stall, trickle or idle.
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return fd_ >= 0; }
  /// Sends all of `bytes` (false when the server has closed or reset the connection).
  bool send_bytes(const std::string& bytes) {
    size_t sent = 0;
    while (fd_ >= 0 && sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return fd_ >= 0;
  }
  /// Reads what arrives within `seconds`, or until the server closes (closed_by_server()).
  std::string read_for(double seconds) {
    std::string out;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    char buf[4096];
    while (fd_ >= 0 && !closed_ && std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  /// Reads one whole answer (head and Content-Length bytes of body), at most `seconds`.
  std::string read_answer(double seconds) {
    std::string out;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!closed_ && std::chrono::steady_clock::now() < end) {
      out += read_for(0.02);
      const size_t head = out.find("\r\n\r\n");
      if (head == std::string::npos) continue;
      const std::regex length_re("Content-Length: ([0-9]+)", std::regex::icase);
      std::smatch m;
      const std::string h = out.substr(0, head);
      const size_t length = std::regex_search(h, m, length_re) ? std::stoul(m[1]) : 0;
      if (out.size() >= head + 4 + length) break;
    }
    return out;
  }
  bool closed_by_server() const { return closed_; }

 private:
  int fd_;
  bool closed_ = false;
};

/// The value of a Prometheus sample line `name` (e.g. `vcpclip_timeouts_total{kind="body"}`), or -1.
inline double metric(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

/// The status code of a raw HTTP answer (0 when there is none).
inline int raw_status(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

inline std::string file_bytes(const std::string& path) { return vcpclip::testing::slurp(path); }

}  // namespace serve_fixture
