# The Redis client layer: URL parsing (redis_url), our hiredis adapter for
# libuv (redis_uv) and one asynchronous connection with connect/command
# timeouts, AUTH/SELECT and reconnection (redis_conn). The Redis store is
# built on it. Included from engine/CMakeLists.txt.
add_library(saga_redis STATIC
  ${CMAKE_CURRENT_LIST_DIR}/src/redis_url.c
  ${CMAKE_CURRENT_LIST_DIR}/src/redis_uv.c
  ${CMAKE_CURRENT_LIST_DIR}/src/redis_conn.c)
target_include_directories(saga_redis PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
target_link_libraries(saga_redis PUBLIC PkgConfig::HIREDIS PkgConfig::LIBUV)
