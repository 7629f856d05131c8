# Runs EXE with ARGS (separated by spaces) and fails unless its exit status is EXPECT_RC
# ("0" or "nonzero") and its output, stdout and stderr together, matches REGEX.
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${EXE}" ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE out)
message("${out}")
if(EXPECT_RC STREQUAL "0" AND NOT rc EQUAL 0)
  message(FATAL_ERROR "kv_calc ${ARGS}: exit status ${rc}, expected 0")
elseif(EXPECT_RC STREQUAL "nonzero" AND rc EQUAL 0)
  message(FATAL_ERROR "kv_calc ${ARGS}: exit status 0, expected an error")
endif()
if(NOT out MATCHES "${REGEX}")
  message(FATAL_ERROR "kv_calc ${ARGS}: the output does not match the regular expression\n  ${REGEX}")
endif()
