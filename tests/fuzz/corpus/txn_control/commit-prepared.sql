SELECT 1;
commit prepared 'x';
