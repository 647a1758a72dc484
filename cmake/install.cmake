# SPDX-License-Identifier: BSD-3-Clause
# What `cmake --install build [--prefix P]` puts where (GNUInstallDirs,
# DESTDIR honoured).  The targets install themselves beside their
# definitions (src/engine, src/server, src/cli, man/); this file adds what
# belongs to the project as a whole:
#   LIBDIR/pkgconfig/tally.pc            pkg-config, relocatable (${pcfiledir})
#   LIBDIR/cmake/tally/                  find_package(tally): tally::tally (shared),
#                                        tally::tally_static
#   DOCDIR/                              LICENSE, CHANGELOG.md, README.md
#   lib/systemd/system/tallyd.service    with ExecStart at this build's SBINDIR
include(CMakePackageConfigHelpers)

# tally.pc finds its prefix from where it lies, so an install with --prefix
# at install time (rather than CMAKE_INSTALL_PREFIX at configure time) or
# under DESTDIR still points at the right files.
set(pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE ${CMAKE_INSTALL_LIBDIR} OR IS_ABSOLUTE ${CMAKE_INSTALL_INCLUDEDIR})
  set(PC_PREFIX ${CMAKE_INSTALL_PREFIX})
  set(PC_LIBDIR ${CMAKE_INSTALL_FULL_LIBDIR})
  set(PC_INCLUDEDIR ${CMAKE_INSTALL_FULL_INCLUDEDIR})
else()
  file(RELATIVE_PATH up /root/${pc_dir} /root)
  string(REGEX REPLACE "/$" "" up "${up}")
  set(PC_PREFIX "\${pcfiledir}/${up}")
  set(PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/tally.pc.in
               ${PROJECT_BINARY_DIR}/tally.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tally.pc DESTINATION ${pc_dir} COMPONENT dev)

set(cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/tally)
install(EXPORT tallyTargets NAMESPACE tally:: DESTINATION ${cmake_dir}
        COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tallyConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tallyConfig.cmake INSTALL_DESTINATION ${cmake_dir})
# Before 1.0.0 a minor release may change the API (CHANGELOG.md), so only
# the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tallyConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tallyConfig.cmake
              ${PROJECT_BINARY_DIR}/tallyConfigVersion.cmake
        DESTINATION ${cmake_dir} COMPONENT dev)

install(FILES LICENSE CHANGELOG.md README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT doc)

# The systemd unit, with ExecStart pointing at the tallyd being installed.
# Written at install time, so `cmake --install --prefix P` gets P's path.
set(TALLY_SYSTEMD_UNITDIR lib/systemd/system CACHE STRING
    "Where tallyd.service goes: relative to the prefix, or absolute")
if(IS_ABSOLUTE ${CMAKE_INSTALL_SBINDIR})
  set(sbin_at_install ${CMAKE_INSTALL_SBINDIR})
else()
  set(sbin_at_install "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}")
endif()
install(CODE "
  set(unitdir \"${TALLY_SYSTEMD_UNITDIR}\")
  if(NOT IS_ABSOLUTE \"\${unitdir}\")
    set(unitdir \"\${CMAKE_INSTALL_PREFIX}/\${unitdir}\")
  endif()
  file(READ \"${PROJECT_SOURCE_DIR}/dist/tallyd.service\" unit)
  string(REPLACE \"ExecStart=/usr/sbin/tallyd \" \"ExecStart=${sbin_at_install}/tallyd \"
         unit \"\${unit}\")
  file(WRITE \"${PROJECT_BINARY_DIR}/dist/tallyd.service\" \"\${unit}\")
  file(INSTALL \"${PROJECT_BINARY_DIR}/dist/tallyd.service\" DESTINATION \"\${unitdir}\")
" COMPONENT server)

install(FILES tallyd.conf.example DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
