file(REMOVE_RECURSE
  "../test_cmd_once"
  "../test_cmd_once.pdb"
  "CMakeFiles/test_cmd_once.dir/test_cmd_once.c.o"
  "CMakeFiles/test_cmd_once.dir/test_cmd_once.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_once.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
