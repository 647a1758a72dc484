file(REMOVE_RECURSE
  "../test_proto_resp"
  "../test_proto_resp.pdb"
  "CMakeFiles/test_proto_resp.dir/test_proto_resp.c.o"
  "CMakeFiles/test_proto_resp.dir/test_proto_resp.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_proto_resp.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
