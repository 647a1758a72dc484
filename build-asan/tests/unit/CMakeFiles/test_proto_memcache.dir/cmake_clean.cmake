file(REMOVE_RECURSE
  "../test_proto_memcache"
  "../test_proto_memcache.pdb"
  "CMakeFiles/test_proto_memcache.dir/test_proto_memcache.c.o"
  "CMakeFiles/test_proto_memcache.dir/test_proto_memcache.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_proto_memcache.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
