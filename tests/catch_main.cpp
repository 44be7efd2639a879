// The main of the test programs: Catch2's session (its implementation is in catch_impl.cpp).
int proc_test_run_catch(int argc, char* argv[]);

int main(int argc, char* argv[]) { return proc_test_run_catch(argc, argv); }
