#include "engine/log.h"

#include <cstdlib>

#include <spdlog/cfg/helpers.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace dsn::log {

void init_from_env() {
  auto logger = spdlog::stderr_color_mt("dsn");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
  if (const char* level = std::getenv("DSN_LOG_LEVEL")) {
    spdlog::cfg::helpers::load_levels(level);
  }
}

}  // namespace dsn::log
