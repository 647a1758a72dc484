file(REMOVE_RECURSE
  "../test_cmd_events"
  "../test_cmd_events.pdb"
  "CMakeFiles/test_cmd_events.dir/test_cmd_events.c.o"
  "CMakeFiles/test_cmd_events.dir/test_cmd_events.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_cmd_events.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
