// A test case that cannot run on this machine (no root for a tmpfs, no
// network namespaces) reports itself skipped, never passed. doctest 2.4 has
// no run-time skip, so the case prints a marker line and returns;
// test/run_tests.py counts each marker as a skip instead of a pass.
#pragma once

#include <cstdio>
#include <string>

#define CONCLAVE_SKIP(why)                                                         \
  do {                                                                             \
    std::printf("CONCLAVE-SKIP: %s\n", std::string(why).c_str());                 \
    std::fflush(stdout);                                                           \
    return;                                                                        \
  } while (0)
