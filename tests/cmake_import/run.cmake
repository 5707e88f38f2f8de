# Installs the library into WORK_DIR/prefix, then builds and runs the outside project, with
# find_package(mae) and with pkg-config.
file(REMOVE_RECURSE ${WORK_DIR})
foreach(step
    "${CMAKE_COMMAND};-S;${MAE_SOURCE_DIR};-B;${WORK_DIR}/lib;-DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix;-DMAE_BUILD_TESTS=OFF;-DMAE_BUILD_EXAMPLES=OFF;-DMAE_BUILD_BENCHMARKS=OFF;-DMAE_BUILD_TOOLS=OFF"
    "${CMAKE_COMMAND};--install;${WORK_DIR}/lib"
    "${CMAKE_COMMAND};-S;${MAE_SOURCE_DIR}/tests/cmake_import;-B;${WORK_DIR}/app;-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix"
    "${CMAKE_COMMAND};--build;${WORK_DIR}/app"
    "${WORK_DIR}/app/import_test"
    "${WORK_DIR}/app/data_import_test"
    # without CMake: the installed pkg-config files
    "sh;-c;export PKG_CONFIG_PATH=${WORK_DIR}/prefix/share/pkgconfig && c++ -O1 ${MAE_SOURCE_DIR}/tests/cmake_import/data_main.cpp \
$(pkg-config --cflags --libs mae-data) -o ${WORK_DIR}/pkg_config_test"
    "${WORK_DIR}/pkg_config_test")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake_import: step failed (${rc}): ${step}")
  endif()
endforeach()
