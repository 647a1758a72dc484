file(REMOVE_RECURSE
  "../test_server_outbox"
  "../test_server_outbox.pdb"
  "CMakeFiles/test_server_outbox.dir/__/__/src/server/outbox.c.o"
  "CMakeFiles/test_server_outbox.dir/__/__/src/server/outbox.c.o.d"
  "CMakeFiles/test_server_outbox.dir/test_server_outbox.c.o"
  "CMakeFiles/test_server_outbox.dir/test_server_outbox.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_server_outbox.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
