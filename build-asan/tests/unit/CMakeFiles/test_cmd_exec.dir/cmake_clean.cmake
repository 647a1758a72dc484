file(REMOVE_RECURSE
  "../test_cmd_exec"
  "../test_cmd_exec.pdb"
  "CMakeFiles/test_cmd_exec.dir/test_cmd_exec.c.o"
  "CMakeFiles/test_cmd_exec.dir/test_cmd_exec.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_exec.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
