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
sc_unit_test(test_gemini_sim)
sc_unit_test(test_gemini)
sc_unit_test(test_tokenizer)
sc_unit_test(test_safetensors)
sc_unit_test(test_ops_cpu)
sc_unit_test(test_encoder)

# Integration: kcat produces, scrimp serve consumes, the simulator answers (tests/integration/).
add_test(NAME integration_serve
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_serve.sh $<TARGET_FILE:scrimp>)
add_test(NAME integration_backfill
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_backfill.sh $<TARGET_FILE:scrimp>)
add_test(NAME integration_cli
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_cli.sh $<TARGET_FILE:scrimp>)
set_tests_properties(integration_serve integration_cli integration_backfill PROPERTIES TIMEOUT 900)
