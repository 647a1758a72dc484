file(REMOVE_RECURSE
  "CMakeFiles/tally_git_rev"
  "build_rev.c"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/tally_git_rev.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
