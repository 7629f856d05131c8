# cmake -DFROM=<mathjax> -DTO=<html>/mathjax -P copy_mathjax.cmake
# Copies MathJax 2 for offline use, without its unpacked sources and its tests.
file(REMOVE_RECURSE "${TO}")
file(COPY "${FROM}/" DESTINATION "${TO}"
     REGEX "/(unpacked|test)$" EXCLUDE)
if(EXISTS /usr/share/doc/libjs-mathjax/copyright)
  file(COPY /usr/share/doc/libjs-mathjax/copyright DESTINATION "${TO}")
endif()
# file(COPY) keeps the old time stamps; the build compares this one.
file(TOUCH "${TO}/MathJax.js")
