// Boost.Asio for fwha. Boost 1.74's awaitable.hpp uses std::exchange without including
// <utility>, which breaks under g++ 12 in C++20 mode: include it first, in one place.
#pragma once

#include <utility>

#include <boost/asio.hpp>
