# FindZooKeeper: the Apache ZooKeeper C client (Debian ships no CMake config or pkg-config).
#
# Imported target:  ZooKeeper::ZooKeeper
# Result variables: ZooKeeper_FOUND, ZooKeeper_INCLUDE_DIR, ZooKeeper_LIBRARY, ZooKeeper_FLAVOUR
# Input:            ZooKeeper_FLAVOUR = mt (default, multi-threaded) or st (single-threaded).
#                   The two libraries export the same symbols: one process links one of them.
if(NOT ZooKeeper_FLAVOUR)
  set(ZooKeeper_FLAVOUR mt)
endif()
find_path(ZooKeeper_INCLUDE_DIR NAMES zookeeper/zookeeper.h)
find_library(ZooKeeper_LIBRARY NAMES zookeeper_${ZooKeeper_FLAVOUR})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ZooKeeper REQUIRED_VARS ZooKeeper_LIBRARY ZooKeeper_INCLUDE_DIR)
if(ZooKeeper_FOUND AND NOT TARGET ZooKeeper::ZooKeeper)
  add_library(ZooKeeper::ZooKeeper UNKNOWN IMPORTED)
  set_target_properties(ZooKeeper::ZooKeeper PROPERTIES
    IMPORTED_LOCATION "${ZooKeeper_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${ZooKeeper_INCLUDE_DIR}")
  if(ZooKeeper_FLAVOUR STREQUAL "mt")
    set_property(TARGET ZooKeeper::ZooKeeper PROPERTY INTERFACE_COMPILE_DEFINITIONS THREADED)
    find_package(Threads REQUIRED)
    set_property(TARGET ZooKeeper::ZooKeeper PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
endif()
mark_as_advanced(ZooKeeper_INCLUDE_DIR ZooKeeper_LIBRARY)
