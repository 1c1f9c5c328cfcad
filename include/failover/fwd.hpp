// SPDX-License-Identifier: MIT
// Forward declarations, so code that only passes a Router&, a ChatRequest& or
// a Result around pulls in no JSON, curl or RE2 headers.
#pragma once

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

enum class FailureKind;
enum class Reason;
struct Attempt;
struct Failure;
class FailoverError;
template <class T>
class Result;

struct Message;
struct Tool;
struct ToolCall;
struct Signature;
struct Thinking;
struct ChatRequest;
struct ChatResponse;
struct Usage;
struct StreamDelta;
struct StreamLimits;
struct SseEvent;
struct SseEventView;
class SseParser;

struct HttpRequest;
struct HttpResponse;
struct Deadline;

class Secret;
class Clock;
class Sleeper;
class ManualClock;
class Schema;
class CircuitBreaker;
class RetryBudget;
class MetricsSink;
class AnyRoute;
class DynamicRouter;
struct RouteOptions;
struct RouterOptions;
struct NoTransport;
template <class A, class T>
class Route;
template <class... Routes>
class Router;

FAILOVER_END_NAMESPACE
