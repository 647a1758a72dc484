file(REMOVE_RECURSE
  "../../tallyd"
  "../../tallyd.pdb"
  "CMakeFiles/tallyd.dir/conffile.c.o"
  "CMakeFiles/tallyd.dir/conffile.c.o.d"
  "CMakeFiles/tallyd.dir/config.c.o"
  "CMakeFiles/tallyd.dir/config.c.o.d"
  "CMakeFiles/tallyd.dir/conn.c.o"
  "CMakeFiles/tallyd.dir/conn.c.o.d"
  "CMakeFiles/tallyd.dir/fronts.c.o"
  "CMakeFiles/tallyd.dir/fronts.c.o.d"
  "CMakeFiles/tallyd.dir/log.c.o"
  "CMakeFiles/tallyd.dir/log.c.o.d"
  "CMakeFiles/tallyd.dir/main.c.o"
  "CMakeFiles/tallyd.dir/main.c.o.d"
  "CMakeFiles/tallyd.dir/notify.c.o"
  "CMakeFiles/tallyd.dir/notify.c.o.d"
  "CMakeFiles/tallyd.dir/outbox.c.o"
  "CMakeFiles/tallyd.dir/outbox.c.o.d"
  "CMakeFiles/tallyd.dir/push.c.o"
  "CMakeFiles/tallyd.dir/push.c.o.d"
  "CMakeFiles/tallyd.dir/tls.c.o"
  "CMakeFiles/tallyd.dir/tls.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tallyd.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
