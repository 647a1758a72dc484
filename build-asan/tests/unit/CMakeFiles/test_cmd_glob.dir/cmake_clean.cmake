file(REMOVE_RECURSE
  "../test_cmd_glob"
  "../test_cmd_glob.pdb"
  "CMakeFiles/test_cmd_glob.dir/test_cmd_glob.c.o"
  "CMakeFiles/test_cmd_glob.dir/test_cmd_glob.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_glob.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
