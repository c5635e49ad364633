# TM_SANITIZERS="address;undefined" or "thread": applied to every target of the build.
if(TM_SANITIZERS)
  list(JOIN TM_SANITIZERS "," _tm_san)
  if("thread" IN_LIST TM_SANITIZERS AND "address" IN_LIST TM_SANITIZERS)
    message(FATAL_ERROR "TM_SANITIZERS: thread cannot be combined with address")
  endif()
  add_compile_options(-fsanitize=${_tm_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_tm_san})
endif()
