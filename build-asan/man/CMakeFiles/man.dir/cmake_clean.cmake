file(REMOVE_RECURSE
  "CMakeFiles/man"
  "tally.1"
  "tallyd.8"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/man.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
