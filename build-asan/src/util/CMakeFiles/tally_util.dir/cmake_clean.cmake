file(REMOVE_RECURSE
  "CMakeFiles/tally_util.dir/util.c.o"
  "CMakeFiles/tally_util.dir/util.c.o.d"
  "libtally_util.a"
  "libtally_util.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_util.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
