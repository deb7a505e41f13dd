# Runs COMMAND (arguments separated by '|') and fails unless it exits with EXPECTED_EXIT and its output
# matches EXPECTED_OUTPUT (a regular expression). Used as: cmake -DCOMMAND=... -P expect_exit.cmake
string(REPLACE "|" ";" command "${COMMAND}")
execute_process(COMMAND ${command} RESULT_VARIABLE exit_code OUTPUT_VARIABLE output
                ERROR_VARIABLE output)
if(NOT exit_code STREQUAL EXPECTED_EXIT)
  message(FATAL_ERROR "expected exit status ${EXPECTED_EXIT}, got ${exit_code}; output:\n${output}")
endif()
if(DEFINED EXPECTED_OUTPUT AND NOT output MATCHES "${EXPECTED_OUTPUT}")
  message(FATAL_ERROR "output does not match '${EXPECTED_OUTPUT}':\n${output}")
endif()
