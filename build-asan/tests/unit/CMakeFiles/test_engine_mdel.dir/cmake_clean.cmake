file(REMOVE_RECURSE
  "../test_engine_mdel"
  "../test_engine_mdel.pdb"
  "CMakeFiles/test_engine_mdel.dir/test_engine_mdel.c.o"
  "CMakeFiles/test_engine_mdel.dir/test_engine_mdel.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_mdel.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
