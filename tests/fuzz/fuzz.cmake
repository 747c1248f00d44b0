# fuzz.cmake - libFuzzer harnesses over scrimp's parsers (SCRIMP_FUZZ=ON, clang; the top-level
# CMakeLists.txt instruments everything with -fsanitize=fuzzer-no-link,address,undefined).
# scripts/fuzz builds and runs them; their seeds are corpus/<name>/, their dictionaries <name>.dict.
set(SCRIMP_FUZZ_TARGETS request config safetensors tokenizer gemini_response batch index_file
  backfill_state sim_request changelog)

function(sc_fuzz_target name)
  add_executable(fuzz_${name} tests/fuzz/fuzz_${name}.c)
  target_link_libraries(fuzz_${name} PRIVATE scrimp_pipelines)
  target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  # where fuzz_tokenizer finds the model's vocab.txt when SCRIMP_SOURCE_DIR is not set
  target_compile_definitions(fuzz_${name} PRIVATE SC_FUZZ_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
endfunction()

foreach(t IN LISTS SCRIMP_FUZZ_TARGETS)
  sc_fuzz_target(${t})
endforeach()
