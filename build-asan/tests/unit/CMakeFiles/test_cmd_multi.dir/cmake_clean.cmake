file(REMOVE_RECURSE
  "../test_cmd_multi"
  "../test_cmd_multi.pdb"
  "CMakeFiles/test_cmd_multi.dir/test_cmd_multi.c.o"
  "CMakeFiles/test_cmd_multi.dir/test_cmd_multi.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_multi.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
