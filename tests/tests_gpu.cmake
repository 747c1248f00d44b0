# tests_gpu.cmake - GPU tests (ctest label "gpu"): plain C, no cmocka, so they build on a bare GPU
# machine; each exits 77 (skipped) when no CUDA device initialises.
function(sc_gpu_test name)
  add_executable(${name} tests/${name}.c)
  target_link_libraries(${name} PRIVATE scrimp_models)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 600
    ENVIRONMENT "SCRIMP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

sc_gpu_test(test_kernels_gpu)
sc_gpu_test(test_encoder_gpu)
sc_gpu_test(test_topk_gpu)
sc_gpu_test(test_router_gpu)
