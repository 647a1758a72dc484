file(REMOVE_RECURSE
  "../test_cmd_del"
  "../test_cmd_del.pdb"
  "CMakeFiles/test_cmd_del.dir/test_cmd_del.c.o"
  "CMakeFiles/test_cmd_del.dir/test_cmd_del.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_del.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
