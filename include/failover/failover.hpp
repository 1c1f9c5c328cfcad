// SPDX-License-Identifier: MIT
// The umbrella header: everything public. Code that only passes a Router
// around can include fwd.hpp instead.
#pragma once

#include "failover/version.hpp"
#include "failover/config.hpp"
#include "failover/fwd.hpp"
#include "failover/env.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/transport.hpp"
#include "failover/adapter.hpp"
#include "failover/clock.hpp"
#include "failover/classifier.hpp"
#include "failover/retry.hpp"
#include "failover/breaker.hpp"
#include "failover/schema.hpp"
#include "failover/budget.hpp"
#include "failover/metrics.hpp"
#include "failover/route.hpp"
#include "failover/router.hpp"
#include "failover/transport/curl.hpp"
#include "failover/adapters/openai.hpp"
#include "failover/adapters/openai_compatible.hpp"
#include "failover/adapters/anthropic.hpp"
#include "failover/adapters/gemini.hpp"
#include "failover/adapters/static_reply.hpp"
