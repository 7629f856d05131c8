include("${doctest_DIR}/doctest.cmake" OPTIONAL RESULT_VARIABLE ATTN_HAVE_DOCTEST_CMAKE)
if(NOT ATTN_HAVE_DOCTEST_CMAKE)
  include(/usr/lib/cmake/doctest/doctest.cmake)
endif()

# attn_lesson(<NN> <topic> SOURCES <files>)
#
# The lessons whose code lesson NN uses (linked to it) are its "uses" in
# lessons/manifest.json, read by the top-level CMakeLists.txt.
# Tests are every tests/NN_topic/*.cpp; doctest runs their cases file by file in
# name order, so test files are numbered in the order of the lesson's TODOs.
#
# Declares lesson NN_topic:
#   attn_lessonNN_lessons, attn_lessonNN_solutions  the lesson's code from each tree
#                                                   (built only when something links it)
#   attn_lessonNN                                   the tree chosen by ATTN_TREE_NN
#   test_NN_topic                                   its doctest executable, every test case
#                                                   registered with CTest, label lessonNN
function(attn_lesson nn topic)
  cmake_parse_arguments(L "" "" "SOURCES" ${ARGN})
  if(L_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "attn_lesson(${nn} ...): unknown arguments ${L_UNPARSED_ARGUMENTS} "
                        "(the lessons a lesson uses are listed in lessons/manifest.json)")
  endif()
  get_property(folder GLOBAL PROPERTY ATTN_LESSON_FOLDER_${nn})
  if(NOT folder STREQUAL "${nn}_${topic}")
    message(FATAL_ERROR "attn_lesson(${nn} ${topic}): lessons/manifest.json has lesson ${nn} in folder '${folder}'")
  endif()
  get_property(L_DEPENDS GLOBAL PROPERTY ATTN_LESSON_USES_${nn})
  file(GLOB L_TESTS CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*.cpp")
  set(dir "${nn}_${topic}")
  set(ATTN_TREE_${nn} "${ATTN_TREE}" CACHE STRING "Tree that lesson ${nn} is built from")
  set_property(CACHE ATTN_TREE_${nn} PROPERTY STRINGS lessons solutions)
  if(NOT ATTN_TREE_${nn} MATCHES "^(lessons|solutions)$")
    message(FATAL_ERROR "ATTN_TREE_${nn} must be lessons or solutions, given '${ATTN_TREE_${nn}}'")
  endif()

  foreach(tree lessons solutions)
    if(tree STREQUAL "lessons")
      set(root "${ATTN_LESSONS_ROOT}/${dir}")
    else()
      set(root "${ATTN_SOLUTIONS_ROOT}/${dir}")
    endif()
    set(target attn_lesson${nn}_${tree})
    list(TRANSFORM L_SOURCES PREPEND "${root}/" OUTPUT_VARIABLE sources)
    add_library(${target} STATIC EXCLUDE_FROM_ALL ${sources})
    target_include_directories(${target} PUBLIC "${root}")
    target_link_libraries(${target} PUBLIC attn_core)
    foreach(dep IN LISTS L_DEPENDS)
      target_link_libraries(${target} PUBLIC attn_lesson${dep})
    endforeach()
    target_precompile_headers(${target} REUSE_FROM attn_pch)
    if(tree STREQUAL "lessons")
      # A scaffold's TODO bodies do not use their parameters yet.
      target_compile_options(${target} PRIVATE -Wno-unused-parameter)
    endif()
  endforeach()

  add_library(attn_lesson${nn} INTERFACE)
  target_link_libraries(attn_lesson${nn} INTERFACE attn_lesson${nn}_${ATTN_TREE_${nn}})

  set(exe test_${dir})
  add_executable(${exe} ${L_TESTS} $<TARGET_OBJECTS:attn_doctest_main>)
  target_link_libraries(${exe} PRIVATE attn_lesson${nn} attn_testing)
  target_precompile_headers(${exe} REUSE_FROM attn_pch)
  doctest_discover_tests(${exe}
    TEST_PREFIX "${nn}: "
    PROPERTIES LABELS "lesson${nn}" TIMEOUT 300)
  message(STATUS "lesson ${dir}: ${ATTN_TREE_${nn}}")
endfunction()
