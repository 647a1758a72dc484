file(REMOVE_RECURSE
  "../test_cmd_expire"
  "../test_cmd_expire.pdb"
  "CMakeFiles/test_cmd_expire.dir/test_cmd_expire.c.o"
  "CMakeFiles/test_cmd_expire.dir/test_cmd_expire.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_expire.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
