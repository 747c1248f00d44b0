# tests.cmake - unit tests (cmocka), integration tests (dev broker + simulator on loopback).
function(sc_unit_test name)
  add_executable(${name} tests/${name}.c)
  target_link_libraries(${name} PRIVATE scrimp_pipelines PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300
    ENVIRONMENT "SCRIMP_SOURCE_DIR=${CMAKE_SOURCE_DIR};SCRIMP_BIN=$<TARGET_FILE:scrimp>")
endfunction()

sc_unit_test(test_config)
sc_unit_test(test_message)
sc_unit_test(test_queue)
sc_unit_test(test_price)
sc_unit_test(test_offsets)
sc_unit_test(test_changelog)
sc_unit_test(test_gemini_sim)
sc_unit_test(test_gemini_sim_batches)
sc_unit_test(test_gemini_sim_caches)
sc_unit_test(test_gemini_sim_quality)
sc_unit_test(test_gemini_sim_faults)
sc_unit_test(test_gemini)
sc_unit_test(test_prompt_cache)
sc_unit_test(test_tokenizer)
sc_unit_test(test_safetensors)
sc_unit_test(test_ops_cpu)
sc_unit_test(test_topk_cpu)
sc_unit_test(test_encoder)
sc_unit_test(test_router)
sc_unit_test(test_cache)
sc_unit_test(test_guards)
sc_unit_test(test_report)
sc_unit_test(test_tokens)
sc_unit_test(test_thinking)
sc_unit_test(test_prune)
sc_unit_test(test_metrics)
sc_unit_test(test_optimizer)
sc_unit_test(test_agreement)
sc_unit_test(test_verdict)
sc_unit_test(test_shadow)
sc_unit_test(test_jschema)
sc_unit_test(test_genreq)

# The benchmark workload generator (bench/workload.py, Python standard library only).
add_test(NAME test_workload
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/test_workload.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(test_workload PROPERTIES TIMEOUT 300)

# Integration: kcat produces, scrimp serve consumes, the simulator answers (tests/integration/).
add_test(NAME integration_serve
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_serve.sh $<TARGET_FILE:scrimp>)
add_test(NAME integration_backfill
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_backfill.sh $<TARGET_FILE:scrimp>)
# The broker down past the session timeout and back up: one result per request, offsets committed.
# Scale-out: two replicas share their cache through the changelog topic; the later one restores
# before it serves, applies the other's entries while both run, and answers every repeat after a
# SIGKILL of the first from its cache (a control run without the changelog pays them again).
add_test(NAME integration_changelog
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_changelog.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_changelog PROPERTIES TIMEOUT 300)
# Scale-out: three replicas, one killed with SIGKILL mid-run: the repeats' hit rate within 5 points
# of one process alone, no answer across tenants, the dead replica's Batch Mode batch adopted (no
# key submitted twice) and one prompt cache for the three (a control without the changelog).
add_test(NAME integration_scale_out
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_scale_out.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_scale_out PROPERTIES TIMEOUT 420)
add_test(NAME integration_broker_outage
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_broker_outage.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_broker_outage PROPERTIES TIMEOUT 300)
# Each of these runs several serve processes, or one through a long outage: two of them at once on
# a 2-core machine slowed the outage test until its requests neared their deadline. ctest -j2 runs
# them one at a time.
set_tests_properties(integration_changelog integration_scale_out integration_broker_outage
  PROPERTIES RESOURCE_LOCK serve_replicas)
add_test(NAME integration_policies
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_policies.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_policies PROPERTIES TIMEOUT 900)
# Shadow evaluation: an easy agent earns a cheaper tier, a hard one stays on strong (simulator quality mode).
add_test(NAME integration_shadow
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_shadow.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_shadow PROPERTIES TIMEOUT 900)
# The Gemini key in none of the files scrimp writes (logs, /metrics, topics, output, stores).
add_test(NAME integration_secrets
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_secrets.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_secrets PROPERTIES TIMEOUT 600)
# Google's SDK (google-genai) drives the simulator: every call kind, errors as APIError.
add_test(NAME integration_sdk
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_sdk.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_sdk PROPERTIES TIMEOUT 600)
# Agent traffic in Gemini's own shape: tool calls through every technique, look-alikes, pruning.
add_test(NAME integration_tools
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_tools.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_tools PROPERTIES TIMEOUT 900)
add_test(NAME integration_cli
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_cli.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_serve integration_cli integration_backfill PROPERTIES TIMEOUT 900)
# The upstream resets connections, truncates bodies and answers past deadlines (simulator faults
# reset, truncate, delay): backfill online and serve lose nothing, and every error names its cause.
add_test(NAME integration_upstream_faults
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_upstream_faults.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_upstream_faults PROPERTIES TIMEOUT 300)

# A real Prometheus (Debian's package) scrapes a running scrimp serve; its query API must return
# the number of results published.
add_test(NAME integration_prometheus
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_prometheus.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_prometheus PROPERTIES TIMEOUT 900)

# The cache store survives kill -9: every acknowledged entry is present and indexed after restart.
add_executable(cache_writer tests/cache_writer.c)
target_link_libraries(cache_writer PRIVATE scrimp_pipelines)
add_test(NAME integration_cache_crash
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_cache_crash.sh $<TARGET_FILE:cache_writer>
          $<TARGET_FILE:scrimp>)
set_tests_properties(integration_cache_crash PROPERTIES TIMEOUT 300)
# The same with HNSW partitions saved at checkpoints (every second) and at close: a kill -9 after
# inserts leaves a stale saved index, which the next open must not load.
add_test(NAME integration_cache_crash_hnsw
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_cache_crash.sh $<TARGET_FILE:cache_writer>)
set_tests_properties(integration_cache_crash_hnsw PROPERTIES TIMEOUT 300
  ENVIRONMENT "CW_INDEX=hnsw")
# A full disk (a small tmpfs the test mounts: root or CAP_SYS_ADMIN, else skipped) under the
# backfill output and journal, the cache store and index.scx, the summary and shadow stores: every
# failure reported with its cause, nothing acknowledged lost once there is room again.
add_test(NAME integration_diskfull
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_diskfull.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_diskfull PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)

# Dependencies point one way (pipelines → models → host → kernels; host subsystems → host/core and
# the allow-list at the top of the script; nothing includes bench/ or tests/).
add_test(NAME check_includes
  COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/check_includes.py ${CMAKE_SOURCE_DIR})
