file(REMOVE_RECURSE
  "../test_engine_commit"
  "../test_engine_commit.pdb"
  "CMakeFiles/test_engine_commit.dir/test_engine_commit.c.o"
  "CMakeFiles/test_engine_commit.dir/test_engine_commit.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_commit.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
