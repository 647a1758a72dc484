file(REMOVE_RECURSE
  "../test_engine_codec"
  "../test_engine_codec.pdb"
  "CMakeFiles/test_engine_codec.dir/test_engine_codec.c.o"
  "CMakeFiles/test_engine_codec.dir/test_engine_codec.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_engine_codec.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
