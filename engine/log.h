// Leveled logging through spdlog. Programs log to stderr; tests may install a sink that turns
// unexpected warnings into failures.
#pragma once

#include <spdlog/spdlog.h>

namespace dsn::log {

// Sets the level from the DSN_LOG_LEVEL environment variable (trace, debug, info, warn, error),
// default info.
void init_from_env();

}  // namespace dsn::log
