file(REMOVE_RECURSE
  "CMakeFiles/tally_cmd.dir/clients.c.o"
  "CMakeFiles/tally_cmd.dir/clients.c.o.d"
  "CMakeFiles/tally_cmd.dir/cmd.c.o"
  "CMakeFiles/tally_cmd.dir/cmd.c.o.d"
  "CMakeFiles/tally_cmd.dir/events.c.o"
  "CMakeFiles/tally_cmd.dir/events.c.o.d"
  "CMakeFiles/tally_cmd.dir/glob.c.o"
  "CMakeFiles/tally_cmd.dir/glob.c.o.d"
  "CMakeFiles/tally_cmd.dir/keyspace.c.o"
  "CMakeFiles/tally_cmd.dir/keyspace.c.o.d"
  "CMakeFiles/tally_cmd.dir/multi.c.o"
  "CMakeFiles/tally_cmd.dir/multi.c.o.d"
  "CMakeFiles/tally_cmd.dir/pubsub.c.o"
  "CMakeFiles/tally_cmd.dir/pubsub.c.o.d"
  "CMakeFiles/tally_cmd.dir/replay.c.o"
  "CMakeFiles/tally_cmd.dir/replay.c.o.d"
  "CMakeFiles/tally_cmd.dir/script.c.o"
  "CMakeFiles/tally_cmd.dir/script.c.o.d"
  "CMakeFiles/tally_cmd.dir/sha1.c.o"
  "CMakeFiles/tally_cmd.dir/sha1.c.o.d"
  "libtally_cmd.a"
  "libtally_cmd.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_cmd.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
