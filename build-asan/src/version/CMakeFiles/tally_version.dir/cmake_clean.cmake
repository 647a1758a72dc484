file(REMOVE_RECURSE
  "CMakeFiles/tally_version.dir/build_rev.c.o"
  "CMakeFiles/tally_version.dir/build_rev.c.o.d"
  "libtally_version.a"
  "libtally_version.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_version.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
